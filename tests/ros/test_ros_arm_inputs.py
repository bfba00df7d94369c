"""The policy node on a fixed-base arm, across processes: no IMU, the object's pose from the simulated scene (as a
perception node publishes it), the goal's from the test, each checked like the joint states.

A pick-and-place bundle (untrained actor, the real contract) runs against the simulated Panda scene, which publishes
joints and the object's pose but no IMU; its gripper command is the last joint target. The goal comes from the test:
while it flows, the ticks run the policy and observe exactly the published goal and the scene's object; when it
stops, the ticks are backups whose reason names the goal topic as stale; a non-finite goal is invalid; the policy
resumes when it flows again.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Float64MultiArray

from robot_rl.bench.ros import untrained_bundle
from robot_rl.bundle import load_bundle
from robot_rl.ros_nodes.qos import DEFAULTS, make_qos
from robot_rl.tick_record import STATUS, TickRecord, decode_labels, unpack

GOAL = (0.5, -0.1, 0.3)


def _slice(contract, name: str) -> slice:  # type: ignore[no-untyped-def]
    off = 0
    for t in contract.obs_terms:
        if t.name == name:
            return slice(off, off + t.dim)
        off += t.dim * t.history
    raise KeyError(name)


def test_arm_policy_node_reads_poses_without_imu_and_backs_up_on_stale_or_invalid_goal(
        probe, nodes, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    bundle = untrained_bundle(tmp_path / "pick_place", "panda_pick_place")
    c = load_bundle(bundle).contract
    state_qos = make_qos(*DEFAULTS["state"])
    raw = probe.collect(Float64MultiArray, "/policy_node/tick", make_qos(*DEFAULTS["tick"]))
    objects = probe.collect(PoseStamped, "/object_pose", state_qos)
    goal_pub = probe.publisher(PoseStamped, "/goal_pose", state_qos)
    goal = {"xyz": GOAL}

    def publish_goal() -> None:
        msg = PoseStamped()
        msg.header.stamp = probe.node.get_clock().now().to_msg()
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = goal["xyz"]
        msg.pose.orientation.w = 1.0
        goal_pub.publish(msg)

    def ticks() -> list[TickRecord]:
        return [unpack(decode_labels(m.layout.dim[0].label), np.asarray(m.data)) for m in raw]

    nodes.start("sim_robot", "sim_robot_node", {
        "robot": c.robot, "scene_task": "panda_pick_place", "command_joints": list(c.joint_names),
        "command_rate_hz": c.policy_rate_hz, "goal_pose_topic": "/scene_goal"})  # the test owns /goal_pose
    nodes.start("policy", "policy_node", {"bundle": str(bundle), "autostart": True})
    probe.spin_until(lambda: sum(t.status == STATUS["policy"] for t in ticks()) >= 10, 90.0, "10 policy ticks",
                     every=publish_goal, period=0.02)
    assert probe.node.count_publishers("/imu") == 0, "the arm scene publishes no IMU"

    ran = [t for t in ticks() if t.status == STATUS["policy"]]
    for t in ran:
        np.testing.assert_allclose(t.observation[_slice(c, "extra.goal_pos")], GOAL, rtol=0, atol=1e-6)
    # the gripper is the last joint target: the binary gripper closes fully for a negative command, else opens
    lower, upper = c.joint_pos_lower[-1], c.joint_pos_upper[-1]
    for t in ran:
        assert t.targets[-1] == (lower if t.action[3] < 0 else upper), (t.action, t.targets)
    # the scene publishes the object's pose with the stamp of the joint states that follow it: a tick observes the
    # pose stamped like its joints
    probe.spin_until(lambda: len(objects) > 20, 10.0, "object poses", every=publish_goal, period=0.02)
    by_stamp = {o.header.stamp.sec + o.header.stamp.nanosec * 1e-9: o.pose.position for o in objects}
    ran = [t for t in ticks() if t.status == STATUS["policy"]]
    matched = [(t, by_stamp[t.state.timestamp]) for t in ran if t.state.timestamp in by_stamp]
    assert matched, "no tick's joint stamp among the object poses received"
    for t, p in matched:
        np.testing.assert_allclose(t.observation[_slice(c, "extra.object_pos")], [p.x, p.y, p.z], rtol=0, atol=1e-6)

    seen = len(raw)
    probe.spin_until(lambda: any(t.status == STATUS["stale"] for t in ticks()[seen:]), 10.0, "a stale tick")
    stale = next(t for t in ticks()[seen:] if t.status == STATUS["stale"])
    assert stale.reason.startswith("/goal_pose is ") and "ms old" in stale.reason, stale.reason

    goal["xyz"] = (float("nan"), 0.0, 0.3)
    seen = len(raw)
    probe.spin_until(lambda: any(t.status == STATUS["invalid"] for t in ticks()[seen:]), 10.0, "an invalid tick",
                     every=publish_goal, period=0.02)
    invalid = next(t for t in ticks()[seen:] if t.status == STATUS["invalid"])
    assert invalid.reason == "/goal_pose has a non-finite position", invalid.reason

    goal["xyz"] = GOAL
    seen = len(raw)
    probe.spin_until(lambda: any(t.status == STATUS["policy"] for t in ticks()[seen:]), 10.0, "the policy again",
                     every=publish_goal, period=0.02)
    codes = nodes.stop_all(timeout=15.0)
    assert codes["policy"] == 0, codes
