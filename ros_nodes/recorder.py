"""Recorder node: the policy node's per-tick records plus the raw ROS topics into a rotating rosbag2 (MCAP) bag.

It runs in its own process so the control loop never blocks on disk. Tick records (`<policy>/tick`,
std_msgs/Float64MultiArray with labelled sections) are stored as `robot_rl_msgs/msg/ControlTick` (see tick.py);
raw topics are stored byte-for-byte as received (raw subscriptions, no re-serialization), with the type discovered
from the ROS graph. Killing the recorder loses at most the active split (see bagwriter.py).
"""

from __future__ import annotations

import importlib
import json
import time
from typing import Any

import numpy as np
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, QoSProfile, ReliabilityPolicy
from std_msgs.msg import Float64MultiArray, String

from robot_rl.tick_record import TICK_TYPE, decode_labels, to_bag_message, typestore, unpack

from .bagwriter import RotatingBagWriter
from .qos import declare_qos, loud_sub, qos_param
from .runtime import init, spin

DEFAULT_TOPICS = ["/joint_states", "/imu", "/cmd_vel", "/forward_position_controller/commands",
                  "/joint_trajectory_controller/joint_trajectory", "/diagnostics", "/estop",
                  "/policy_node/contract", "/policy_node/estop_state", "/sim_robot/ground_truth",
                  "/sim_robot/contacts"]


def message_class(type_name: str) -> Any:
    """`pkg/msg/Type` -> the generated rclpy message class."""
    pkg, _, name = type_name.split("/")
    return getattr(importlib.import_module(f"{pkg}.msg"), name)


class RecorderNode(Node):
    def __init__(self, node_name: str = "recorder", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        p = self.declare_parameter
        p("output", "")
        p("topics", DEFAULT_TOPICS)
        p("tick_topic", "/policy_node/tick")
        p("contract_topic", "/policy_node/contract")
        p("tick_record_topic", "/robot_rl/ticks")
        p("split_duration_s", 5.0)
        p("split_size_mb", 64.0)
        p("discovery_period_s", 0.5)
        # ticks held until the contract (their joint names) arrives; beyond that each one is dropped and counted
        p("pending_ticks", 10_000)
        declare_qos(self, "tick")
        declare_qos(self, "record")
        declare_qos(self, "estop")
        output = self.get_parameter("output").value
        if not output:
            raise ValueError("parameter 'output' (bag folder) is not set")
        self.store = typestore()
        self.tick_topic_out = self.get_parameter("tick_record_topic").value
        self.writer = RotatingBagWriter(output, self.store, float(self.get_parameter("split_duration_s").value),
                                        float(self.get_parameter("split_size_mb").value),
                                        custom_data={"robot_rl.tick_topic": self.tick_topic_out})
        self.writer.add_topic(self.tick_topic_out, TICK_TYPE)
        self.joint_names: list[str] | None = None
        self.pending: list[Float64MultiArray] = []
        self.pending_limit = int(self.get_parameter("pending_ticks").value)
        self.ticks = 0
        self.dropped = 0
        """Ticks never written: over `pending_ticks` while the contract had not arrived, or still held at close."""
        self.raw_counts: dict[str, int] = {}
        self._subs: dict[str, Any] = {}
        tick_topic, contract_topic = self.get_parameter("tick_topic").value, self.get_parameter("contract_topic").value
        self.create_subscription(Float64MultiArray, tick_topic, self._on_tick, qos_param(self, "tick"),
                                 event_callbacks=loud_sub(self, tick_topic))
        self.create_subscription(String, contract_topic, self._on_contract, qos_param(self, "estop"),
                                 event_callbacks=loud_sub(self, contract_topic))
        self._discover()
        self.create_timer(float(self.get_parameter("discovery_period_s").value), self._discover)
        self.get_logger().info(f"recording to {output}")

    def _discover(self) -> None:
        """Subscribe (raw) to every requested topic once a publisher of it is known: its QoS decides the
        subscription's (see `_record_qos`). A topic in the graph only through subscriptions (this node's own contract
        subscription, a policy node waiting for its joint states) says nothing about what will be offered: subscribed
        then, a latched topic got a volatile reader, which never receives the value published before it matched."""
        wanted = [self.resolve_topic_name(t) for t in self.get_parameter("topics").value]
        graph = dict(self.get_topic_names_and_types())
        for topic in wanted:
            if topic in self._subs or topic not in graph or not self.count_publishers(topic):
                continue
            type_name = graph[topic][0]
            try:
                cls = message_class(type_name)
                self.writer.add_topic(topic, type_name)
            except Exception as exc:  # noqa: BLE001 - unknown type: record everything else
                self.get_logger().warning(f"not recording {topic} ({type_name}): {exc}")
                self._subs[topic] = None
                continue
            self._subs[topic] = self.create_subscription(
                cls, topic, lambda data, t=topic: self._on_raw(t, data), self._record_qos(topic), raw=True,
                event_callbacks=loud_sub(self, topic))
            self.get_logger().info(f"recording {topic} ({type_name})")

    def _record_qos(self, topic: str) -> QoSProfile:
        """qos.record.* with the publishers' own reliability and durability where they all offer more (as
        `ros2 bag record` adapts): a reliable stream is recorded without loss, a latched one (contract, e-stop
        state, a latched e-stop) with the value published before the recorder started; best effort and volatile
        otherwise, which match every publisher."""
        qos = qos_param(self, "record")
        offered = [info.qos_profile for info in self.get_publishers_info_by_topic(topic)]
        if offered and all(q.reliability == ReliabilityPolicy.RELIABLE for q in offered):
            qos.reliability = ReliabilityPolicy.RELIABLE
        if offered and all(q.durability == DurabilityPolicy.TRANSIENT_LOCAL for q in offered):
            qos.durability = DurabilityPolicy.TRANSIENT_LOCAL
        return qos

    def _on_raw(self, topic: str, data: bytes) -> None:
        self.writer.write(topic, time.time_ns(), data)
        self.raw_counts[topic] = self.raw_counts.get(topic, 0) + 1

    def _on_contract(self, msg: String) -> None:
        try:
            self.joint_names = list(json.loads(msg.data)["joint_names"])
        except (ValueError, KeyError, TypeError) as exc:
            self.get_logger().error(f"unreadable contract on {self.get_parameter('contract_topic').value}: {exc}")
            return
        pending, self.pending = self.pending, []
        for tick in pending:
            self._on_tick(tick)

    def _on_tick(self, msg: Float64MultiArray) -> None:
        if self.joint_names is None:
            if len(self.pending) < self.pending_limit:
                self.pending.append(msg)
            else:
                self.dropped += 1
                self.get_logger().warning(
                    f"no contract on {self.get_parameter('contract_topic').value} yet and {self.pending_limit} "
                    f"ticks held (pending_ticks): dropping ticks ({self.dropped} so far)", throttle_duration_sec=1.0)
            return
        labels = decode_labels(msg.layout.dim[0].label)
        rec = unpack(labels, np.frombuffer(msg.data))
        bag_msg = to_bag_message(self.store, rec, self.joint_names)
        self.writer.write(self.tick_topic_out, int(rec.stamp * 1e9), self.store.serialize_cdr(bag_msg, TICK_TYPE))
        self.ticks += 1

    def close(self) -> None:
        self.writer.close()
        if self.pending:
            self.get_logger().error(f"no contract arrived on {self.get_parameter('contract_topic').value}: "
                                    f"{len(self.pending)} ticks held for it are not in the bag")
            self.dropped += len(self.pending)
            self.pending = []
        self.get_logger().info(f"bag closed: {self.ticks} ticks, raw {self.raw_counts}, dropped {self.dropped} ticks")


def main(args: list[str] | None = None) -> None:
    init(args)
    node = RecorderNode()
    try:
        spin(node)
    finally:
        node.close()


if __name__ == "__main__":
    main()
