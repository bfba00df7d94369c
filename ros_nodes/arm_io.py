"""Task inputs of the policy node: what a contract observes besides the robot's own sensors.

A legged contract observes only joints and the IMU (`NoTaskInputs`). An arm contract's `extra.<key>` observation
terms (robot_rl.sim.arm_task) need the object's and the goal's positions, which a perception node publishes as
`geometry_msgs/PoseStamped` (a camera's pose estimate, motion capture) in the arm's base frame, on the topics the
parameters `<input>_pose_topic` name (`object_pose_topic`, `goal_pose_topic`); the grasp point comes from the arm
model at the measured joints. Each pose is checked like the joint states: a non-finite one is invalid, one older than
the node's staleness limit is stale, and either makes the tick a backup tick with that reason.
"""

from __future__ import annotations

import math
import time
from typing import Any, Protocol

import numpy as np
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from rclpy.qos import QoSProfile
from rclpy.wait_for_message import wait_for_message

from robot_rl.contract import PolicyContract
from robot_rl.errors import ContractError
from robot_rl.state import RobotState

from .qos import loud_sub


class TaskInputs(Protocol):
    """The policy node's inputs besides joint states and IMU, filled into the measured state before each tick."""

    def wait_first(self, timeout: float, qos: QoSProfile) -> None:
        """Block until every input has a first usable message; ContractError naming the topic otherwise."""
        ...

    def subscribe(self, qos: QoSProfile) -> list[Any]:
        """Create the subscriptions (the node destroys them on cleanup)."""
        ...

    def fault(self, now: float) -> tuple[str, str]:
        """("invalid" | "stale", why) when an input cannot be used at monotonic time `now`; ("", "") when all can."""
        ...

    def fill(self, state: RobotState) -> None:
        """Write the latest inputs into `state` (its `extras`)."""
        ...


class NoTaskInputs:
    """A contract that observes only the robot's own sensors."""

    def wait_first(self, timeout: float, qos: QoSProfile) -> None:
        """Nothing to wait for."""

    def subscribe(self, qos: QoSProfile) -> list[Any]:
        return []

    def fault(self, now: float) -> tuple[str, str]:
        return "", ""

    def fill(self, state: RobotState) -> None:
        """Nothing to fill."""


class PoseInputs:
    """Object and goal positions from PoseStamped topics (module docstring); the object's velocity is the
    difference of its last two positions over their stamps."""

    def __init__(self, node: Node, contract: PolicyContract, stale_after: float) -> None:
        from robot_rl.sim.arm_task import measured_extras

        self.node = node
        self.extras = measured_extras(contract)
        self.stale_after = stale_after
        self.topics = {name: str(node.get_parameter(f"{name}_pose_topic").value) for name in self.extras.inputs}
        self.positions = {name: np.zeros(3) for name in self.topics}
        self.received = dict.fromkeys(self.topics, -math.inf)
        """Monotonic receipt time of each input's last usable message."""
        self.faults = dict.fromkeys(self.topics, "")
        self.object_vel = np.zeros(3)
        self._object_stamp = math.nan

    def wait_first(self, timeout: float, qos: QoSProfile) -> None:
        for name, topic in self.topics.items():
            ok, msg = wait_for_message(PoseStamped, self.node, topic, qos_profile=qos, time_to_wait=timeout)
            if not ok or msg is None:
                raise ContractError(f"no geometry_msgs/PoseStamped on {topic} within {timeout:g} s (the {name} "
                                    f"position, parameter {name}_pose_topic)")
            self.read(name, msg)
            if self.faults[name]:
                raise ContractError(f"first message on {topic} is unusable: {self.faults[name]}")

    def subscribe(self, qos: QoSProfile) -> list[Any]:
        return [self.node.create_subscription(PoseStamped, topic, lambda msg, name=name: self.read(name, msg), qos,
                                              event_callbacks=loud_sub(self.node, topic))
                for name, topic in self.topics.items()]

    def read(self, name: str, msg: Any) -> None:
        """Take one PoseStamped for input `name`; a non-finite position is a fault and leaves the last one."""
        p = msg.pose.position
        x, y, z = p.x, p.y, p.z
        if not math.isfinite(x + y + z):
            self.faults[name] = f"{self.topics[name]} has a non-finite position"
            return
        self.faults[name] = ""
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        pos = self.positions[name]
        if name == "object":
            dt = stamp - self._object_stamp
            if dt > 0.0:  # the first message, a repeated or a reordered stamp leave the velocity as it is
                self.object_vel[:] = (np.array([x, y, z]) - pos) / dt
            self._object_stamp = stamp
        pos[0], pos[1], pos[2] = x, y, z
        self.received[name] = time.monotonic()

    def fault(self, now: float) -> tuple[str, str]:
        for name, topic in self.topics.items():
            if self.faults[name]:
                return "invalid", self.faults[name]
            age = now - self.received[name]
            if age > self.stale_after:
                return "stale", f"{topic} is {age * 1e3:.0f} ms old (limit {self.stale_after * 1e3:.0f} ms)"
        return "", ""

    def fill(self, state: RobotState) -> None:
        self.extras.fill(state, self.positions, self.object_vel)


def task_inputs(node: Node, contract: PolicyContract, stale_after: float) -> TaskInputs:
    """The inputs the contract's observation terms need besides joints and IMU: poses for `extra.<key>` terms."""
    if any(t.name.startswith("extra.") for t in contract.obs_terms):
        return PoseInputs(node, contract, stale_after)
    return NoTaskInputs()
