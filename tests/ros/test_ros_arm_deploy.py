"""An arm bundle deployed end to end over DDS, as a user runs it: `robot-rl deploy BUNDLE --sim mujoco --record BAG`
starts the simulated Panda scene (arm, table, object, goal; object and goal poses published as a perception node
would, no IMU), the policy node (grasp point from the arm model, ee_delta decoded through it) and the recorder;
`robot-rl replay BAG --out D --bundle BUNDLE` then makes an offline dataset of the recording, every reward term of
the task rebuilt.

The bundle under tests/ros/data/panda_reach (contract.json + policy.onnx, ~200 KB) was trained for 2 minutes with
`robot-rl train --set task=panda_reach max_minutes=2.0` (its README.md has its metrics): a pick-and-place bundle
takes far longer to train than a test may.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray

from robot_rl.bundle import load_bundle
from robot_rl.dataset import load_dataset
from robot_rl.replay import RewardModel
from robot_rl.sim.arm_sim import ArmSceneSim
from robot_rl.tick_record import STATUS, read_ticks

REACH = Path(__file__).parent / "data" / "panda_reach"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "robot_rl.cli", *args]


def _sim_reports(diags: list[DiagnosticArray]) -> list[dict[str, str]]:
    return [{kv.key: kv.value for kv in s.values} for d in diags for s in d.status if "simulated robot" in s.name]


def test_reach_bundle_deployed_over_dds_reaches_its_goal_and_replays_into_a_dataset(  # type: ignore[no-untyped-def]
        ros_domain: int, probe, tmp_path: Path) -> None:
    contract = load_bundle(REACH).contract
    diags = probe.collect(DiagnosticArray, "/diagnostics", 50)
    out = tmp_path / "deploy"
    proc = subprocess.Popen(_cli("deploy", str(REACH), "--sim", "mujoco", "--record", str(out), "--domain-id",
                                 str(ros_domain)), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        # the simulator's own success measure, reported in its diagnostics (1 Hz), over DDS
        probe.spin_until(lambda: any(r.get("success") == "true" for r in _sim_reports(diags)) or
                         proc.poll() is not None, 90.0, "the simulated scene to report success")
    finally:
        proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers
    stdout = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, stdout + "".join(p.read_text()[-3000:] for p in (out / "logs").glob("*.log"))

    reports = [r for r in _sim_reports(diags) if "distance" in r]
    assert reports, "no diagnostics from the simulated scene"
    distances = [float(r["distance"]) for r in reports]
    threshold = load_bundle(REACH).contract.provenance["task_config"]["rewards"]["success_threshold"]
    # the scene deploy started (its task, seed 0): the probe may join DDS after the first 1 Hz reports went out
    start = ArmSceneSim(str(contract.provenance["task"]), seed=0).distance()
    print(f"grasp point to goal over the run: {start:.3f} m -> {min(distances):.3f} m (success below "
          f"{threshold} m); {len(reports)} reports")
    assert start > threshold, "the scene started at its goal: nothing to show"
    assert any(r["success"] == "true" for r in reports) and min(distances) < threshold

    ticks = list(read_ticks(out / "bag"))
    seqs = [t.seq for t in ticks]
    assert seqs == list(range(len(seqs))) and len(seqs) > contract.policy_rate_hz
    # how many ticks ran the policy depends on machine load (stale state -> backup); each backup names its reason
    assert np.mean([t.status == STATUS["policy"] for t in ticks]) > 0.5
    assert all(t.reason for t in ticks if t.status != STATUS["policy"])

    # the recorded bag becomes an offline dataset, as the A1's does: every reward term of the task rebuilt
    data = tmp_path / "dataset"
    proc_replay = subprocess.run(_cli("replay", str(out / "bag"), "--out", str(data), "--bundle", str(REACH)),
                                 capture_output=True, text=True, timeout=180)
    assert proc_replay.returncode == 0, proc_replay.stdout + proc_replay.stderr
    report = json.loads((data / "report.json").read_text())
    ds = load_dataset(data)
    assert report["episodes"] >= 1 and report["transitions"] == sum(len(ep) for ep in ds.episodes) > 20
    assert report["reward_terms"]["left_out"] == {}
    assert report["reward_terms"]["rebuilt"] == RewardModel(contract).weighted  # reach, success, action_rate, ...
    for ep in ds.episodes:
        assert np.isfinite(ep.rewards).all() and ep.observations.shape[1] == contract.obs_dim
