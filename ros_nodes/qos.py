"""QoS profiles as ROS parameters (`qos.<group>.reliability|durability|depth`), with ros2_control-style defaults.

Sensor topics best-effort keep-last 5; commands reliable keep-last 1 (one host); e-stop and the contract
transient-local so a late joiner sees the latched value; the tick record reliable transient-local with a deep
history so the recorder never misses the first ticks.
"""

from __future__ import annotations

from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

DEFAULTS: dict[str, tuple[str, str, int]] = {
    "state": ("best_effort", "volatile", 5),
    "cmd_vel": ("reliable", "volatile", 1),
    "command": ("reliable", "volatile", 1),
    "estop": ("reliable", "transient_local", 1),
    "tick": ("reliable", "transient_local", 500),
    "record": ("best_effort", "volatile", 100),
}

_RELIABILITY = {"reliable": ReliabilityPolicy.RELIABLE, "best_effort": ReliabilityPolicy.BEST_EFFORT}
_DURABILITY = {"volatile": DurabilityPolicy.VOLATILE, "transient_local": DurabilityPolicy.TRANSIENT_LOCAL}


def make_qos(reliability: str, durability: str, depth: int) -> QoSProfile:
    if reliability not in _RELIABILITY:
        raise ValueError(f"QoS reliability '{reliability}' is not one of {', '.join(_RELIABILITY)}")
    if durability not in _DURABILITY:
        raise ValueError(f"QoS durability '{durability}' is not one of {', '.join(_DURABILITY)}")
    if depth < 1:
        raise ValueError(f"QoS depth must be >= 1, got {depth}")
    return QoSProfile(history=HistoryPolicy.KEEP_LAST, depth=depth, reliability=_RELIABILITY[reliability],
                      durability=_DURABILITY[durability])


def declare_qos(node: Node, group: str) -> None:
    """Declare `qos.<group>.*` parameters with this module's defaults."""
    rel, dur, depth = DEFAULTS[group]
    node.declare_parameter(f"qos.{group}.reliability", rel)
    node.declare_parameter(f"qos.{group}.durability", dur)
    node.declare_parameter(f"qos.{group}.depth", depth)


def qos_param(node: Node, group: str) -> QoSProfile:
    """The QoS profile currently configured for `group` (declared with `declare_qos`)."""
    return make_qos(node.get_parameter(f"qos.{group}.reliability").value,
                    node.get_parameter(f"qos.{group}.durability").value,
                    int(node.get_parameter(f"qos.{group}.depth").value))


def quiet_sub() -> SubscriptionEventCallbacks:
    """No default QoS-event handlers: each one is another entity in every executor wait (hot-path nodes)."""
    return SubscriptionEventCallbacks(use_default_callbacks=False)


def quiet_pub() -> PublisherEventCallbacks:
    return PublisherEventCallbacks(use_default_callbacks=False)
