"""End to end over DDS, one process per node: simulated A1 (MuJoCo) + policy node with a trained A1 bundle +
recorder + a constant cmd_vel. For 10 s of simulated time the robot walks forward without falling; the bag opens and
holds every tick's sequence number without a gap.

The trained bundle is checked in under tests/ros/data/a1_walk (contract.json + policy.onnx, ~230 KB), exported from
`make train` (see its README.md for the run and metrics).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Float64MultiArray

from robot_rl.bundle import load_bundle
from robot_rl.ros_nodes.qos import DEFAULTS, make_qos
from robot_rl.ros_nodes.tick import STATUS, read_ticks

BUNDLE = Path(__file__).parent / "data" / "a1_walk"
VX = 0.5
SIM_SECONDS = 10.0


@pytest.mark.skipif(not (BUNDLE / "policy.onnx").is_file(), reason=f"no trained A1 bundle in {BUNDLE}")
def test_a1_walks_forward_over_ros(probe, nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    contract = load_bundle(BUNDLE).contract
    poses = probe.collect(PoseStamped, "/sim_robot/ground_truth", 100)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 50)
    ticks_live = probe.collect(Float64MultiArray, "/policy_node/tick", make_qos(*DEFAULTS["tick"]))
    bag = tmp_path / "bag"
    nodes.start("recorder", "recorder", {"output": str(bag)})
    nodes.start("sim_robot", "sim_robot_node", {
        "robot": contract.robot, "backend": "mujoco", "command_joints": list(contract.joint_names),
        "command_rate_hz": contract.policy_rate_hz, "physics_rate_hz": contract.physics_rate_hz,
        "kp": float(contract.kp[0]), "kd": float(contract.kd[0])})
    nodes.start("policy", "policy_node", {"bundle": str(BUNDLE), "autostart": True})
    nodes.start("cmd_vel", "cmd_vel_publisher", {"vx": VX})
    probe.spin_until(lambda: len(ticks_live) > 0, 60.0, "first policy tick")
    probe.spin_until(lambda: len(poses) > 0, 10.0, "ground truth")
    t_start = _sim_time(poses[-1])
    start = poses[-1]
    probe.spin_until(lambda: _sim_time(poses[-1]) >= t_start + SIM_SECONDS, 120.0, f"{SIM_SECONDS:g} s simulated")
    codes = nodes.stop_all(timeout=15.0)
    assert codes["recorder"] == 0 and codes["policy"] == 0, codes

    # walked forward along its initial heading, never fell
    walked = [p for p in poses if _sim_time(p) >= t_start]
    heading = _yaw(start)
    xy = np.array([[p.pose.position.x, p.pose.position.y] for p in walked])
    forward = (xy[-1] - xy[0]) @ np.array([np.cos(heading), np.sin(heading)])
    speed = forward / (_sim_time(walked[-1]) - t_start)
    heights = np.array([p.pose.position.z for p in walked])
    sim_fell = [kv.value for d in diags for s in d.status if "simulated robot" in s.name for kv in s.values
                if kv.key == "fell"]
    print(f"forward speed {speed:.3f} m/s for cmd {VX} (tracking error {abs(speed - VX):.3f}), "
          f"min height {heights.min():.3f} m")
    assert sim_fell and sim_fell[-1] == "false", "the simulated robot fell"
    assert heights.min() > 0.15
    assert speed > 0.5 * VX, f"walked {forward:.2f} m forward in {SIM_SECONDS:g} s"

    # the bag holds every tick, in order, without a gap; nearly all of them ran the policy
    ticks = list(read_ticks(bag))
    seqs = [t.seq for t in ticks]
    assert seqs == list(range(len(seqs))), "recorded tick sequence numbers have gaps"
    assert len(ticks) >= SIM_SECONDS * contract.policy_rate_hz * 0.9
    policy_share = np.mean([t.status == STATUS["policy"] for t in ticks])
    print(f"{len(ticks)} ticks recorded, {policy_share:.1%} ran the policy")
    assert policy_share > 0.9
    np.testing.assert_allclose(ticks[-1].command, [VX, 0.0, 0.0])


def _sim_time(p: PoseStamped) -> float:
    return p.header.stamp.sec + p.header.stamp.nanosec * 1e-9


def _yaw(p: PoseStamped) -> float:
    o = p.pose.orientation
    return float(np.arctan2(2.0 * (o.w * o.z + o.x * o.y), 1.0 - 2.0 * (o.y * o.y + o.z * o.z)))
