"""QoS profiles as ROS parameters (`qos.<group>.reliability|durability|depth`), with ros2_control-style defaults.

Sensor topics best-effort keep-last 5; commands reliable keep-last 1 (one host); e-stop state and the contract
transient-local so a late joiner sees the latched value; the tick record reliable transient-local with a deep
history so the recorder never misses the first ticks; the recorder's raw topics keep 1000 samples, so a recorder
stalled for a second (a loaded machine, a split being closed) loses nothing of a 1 kHz stream.

The `/estop` input is read twice: reliable volatile (`estop_in`: matches every reliable publisher, the default QoS
of a button node or `ros2 topic pub`) and reliable transient-local (`estop`: also delivers a latched e-stop
published before the node started). Every subscription logs a publisher whose QoS cannot match it (`loud_sub`):
DDS otherwise drops its messages without a word.
"""

from __future__ import annotations

from typing import Any

from rclpy.event_handler import PublisherEventCallbacks, SubscriptionEventCallbacks
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy, qos_policy_name_from_kind

DEFAULTS: dict[str, tuple[str, str, int]] = {
    "state": ("best_effort", "volatile", 5),
    "cmd_vel": ("reliable", "volatile", 1),
    "command": ("reliable", "volatile", 1),
    "estop": ("reliable", "transient_local", 1),
    "estop_in": ("reliable", "volatile", 10),
    "tick": ("reliable", "transient_local", 500),
    "record": ("best_effort", "volatile", 1000),
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


def loud_sub(node: Node, topic: str, expected: str = "") -> SubscriptionEventCallbacks:
    """Only the incompatible-QoS handler (each handler is another entity in every executor wait): an error naming
    the topic and the policy that does not match. `expected` names publishers this subscription is known not to
    match because another one reads them; their events are logged at debug level with that note."""

    def on_incompatible(event: Any) -> None:
        policy = qos_policy_name_from_kind(event.last_policy_kind)
        text = (f"{topic}: a publisher offers incompatible QoS ({policy}); this subscription receives none of its "
                f"messages ({event.total_count} so far): match its QoS or set qos.* parameters")
        if expected:
            node.get_logger().debug(f"{text} ({expected})")
        else:
            node.get_logger().error(text)

    return SubscriptionEventCallbacks(incompatible_qos=on_incompatible, use_default_callbacks=False)


def quiet_pub() -> PublisherEventCallbacks:
    return PublisherEventCallbacks(use_default_callbacks=False)
