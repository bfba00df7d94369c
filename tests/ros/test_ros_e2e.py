"""End to end over DDS, one process per node: simulated A1 + policy node with an A1 bundle + recorder + a constant
cmd_vel.

- MuJoCo, trained bundle: for 10 s of simulated time the robot walks forward without falling; the bag opens and
  holds every tick's sequence number without a gap.
- MuJoCo and PyBullet (cross-engine: bundles are trained in MuJoCo): the same deployment runs for 10 s simulated,
  records a gap-free bag and reports its tracking error.

The trained bundle is checked in under tests/ros/data/a1_walk (contract.json + policy.onnx, ~230 KB), exported from
`make train` (its README.md names the run and its metrics).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from diagnostic_msgs.msg import DiagnosticArray
from geometry_msgs.msg import PoseStamped
from std_msgs.msg import Float64MultiArray

from robot_rl.bundle import load_bundle
from robot_rl.ros_nodes.qos import DEFAULTS, make_qos
from robot_rl.tick_record import STATUS, TickRecord, read_ticks

TRAINED = Path(__file__).parent / "data" / "a1_walk"
VX = 0.5


@dataclass
class Run:
    speed: float
    min_height: float
    fell: bool
    backend: str
    ticks: list[TickRecord]


def _deploy(probe, nodes, bundle: Path, backend: str, seconds: float, bag: Path) -> Run:  # type: ignore[no-untyped-def]
    contract = load_bundle(bundle).contract
    poses = probe.collect(PoseStamped, "/sim_robot/ground_truth", 100)
    diags = probe.collect(DiagnosticArray, "/diagnostics", 50)
    ticks_live = probe.collect(Float64MultiArray, "/policy_node/tick", make_qos(*DEFAULTS["tick"]))
    nodes.start("recorder", "recorder", {"output": str(bag)})
    nodes.start("sim_robot", "sim_robot_node", {
        "robot": contract.robot, "backend": backend, "command_joints": list(contract.joint_names),
        "command_rate_hz": contract.policy_rate_hz, "physics_rate_hz": contract.physics_rate_hz,
        "kp": float(contract.kp[0]), "kd": float(contract.kd[0])})
    nodes.start("policy", "policy_node", {"bundle": str(bundle), "autostart": True})
    nodes.start("cmd_vel", "cmd_vel_publisher", {"vx": VX})
    probe.spin_until(lambda: len(ticks_live) > 0, 60.0, "first policy tick")
    probe.spin_until(lambda: len(poses) > 0, 10.0, "ground truth")
    start = poses[-1]
    t_start = _sim_time(start)
    probe.spin_until(lambda: _sim_time(poses[-1]) >= t_start + seconds, 20.0 * seconds, f"{seconds:g} s simulated")
    codes = nodes.stop_all(timeout=15.0)
    assert codes["recorder"] == 0 and codes["policy"] == 0, codes

    walked = [p for p in poses if _sim_time(p) >= t_start]
    heading = _yaw(start)
    xy = np.array([[p.pose.position.x, p.pose.position.y] for p in walked])
    forward = float((xy[-1] - xy[0]) @ np.array([np.cos(heading), np.sin(heading)]))
    sim = [{kv.key: kv.value for kv in s.values} for d in diags for s in d.status if "simulated robot" in s.name]
    assert sim, "no diagnostics from the simulated robot"
    policy = [{kv.key: kv.value for kv in s.values} for d in diags for s in d.status if "tick_path" in
              {kv.key for kv in s.values}]
    assert policy and {p["tick_path"] for p in policy} == {"fused"}, "the MLP bundle did not run the fused tick"
    run = Run(speed=forward / (_sim_time(walked[-1]) - t_start),
              min_height=float(min(p.pose.position.z for p in walked)), fell=sim[-1]["fell"] == "true",
              backend=sim[-1]["backend"], ticks=list(read_ticks(bag)))
    policy_share = np.mean([t.status == STATUS["policy"] for t in run.ticks])
    print(f"{backend}: forward speed {run.speed:.3f} m/s for cmd {VX} m/s -> tracking error "
          f"{abs(run.speed - VX):.3f} m/s; min height {run.min_height:.3f} m; fell {run.fell}; "
          f"{len(run.ticks)} ticks, {policy_share:.1%} ran the policy")
    seqs = [t.seq for t in run.ticks]
    assert seqs == list(range(len(seqs))), "recorded tick sequence numbers have gaps"
    assert len(seqs) >= seconds * contract.policy_rate_hz * 0.9
    # a stalled process makes the state stale (backup ticks, each naming its reason), but nearly every tick runs
    # the policy even on a loaded machine
    assert policy_share > 0.9 and all(t.reason for t in run.ticks if t.status != STATUS["policy"])
    np.testing.assert_allclose(run.ticks[-1].command, [VX, 0.0, 0.0])
    return run


@pytest.mark.skipif(not (TRAINED / "policy.onnx").is_file(), reason=f"no trained A1 bundle in {TRAINED}")
def test_a1_walks_forward_over_ros(probe, nodes, tmp_path) -> None:  # type: ignore[no-untyped-def]
    run = _deploy(probe, nodes, TRAINED, "mujoco", 10.0, tmp_path / "bag")
    assert run.backend == "mujoco"
    assert not run.fell and run.min_height > 0.15, "the simulated robot fell"
    assert run.speed > 0.5 * VX, f"walked at {run.speed:.2f} m/s for a {VX} m/s command"


@pytest.mark.skipif(not (TRAINED / "policy.onnx").is_file(), reason=f"no trained A1 bundle in {TRAINED}")
@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_deployment_runs_on_each_engine(probe, nodes, tmp_path, backend) -> None:  # type: ignore[no-untyped-def]
    """The whole path on each engine (PyBullet = cross-engine: bundles are trained in MuJoCo): 10 s simulated,
    gap-free bag, and the trained bundle walks at the commanded speed within half of it on either engine, upright."""
    run = _deploy(probe, nodes, TRAINED, backend, 10.0, tmp_path / "bag")
    assert run.backend == backend
    assert not run.fell and run.min_height > 0.15, "the simulated robot fell"
    assert abs(run.speed - VX) < 0.5 * VX, f"walked at {run.speed:.2f} m/s for a {VX} m/s command"


def _sim_time(p: PoseStamped) -> float:
    return p.header.stamp.sec + p.header.stamp.nanosec * 1e-9


def _yaw(p: PoseStamped) -> float:
    o = p.pose.orientation
    return float(np.arctan2(2.0 * (o.w * o.z + o.x * o.y), 1.0 - 2.0 * (o.y * o.y + o.z * o.z)))
