"""`robot-rl deploy` (processes, Ctrl-C shutdown, recording) and `robot-rl bench ros` (JSON last line), as a user runs
them. Both get the test's own ROS_DOMAIN_ID; the CLI sets localhost-only discovery for its children."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from robot_rl.tick_record import STATUS, read_ticks


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "robot_rl.cli", *args]


def test_deploy_sim_record_and_ctrl_c(start_deploy: Callable[..., subprocess.Popen[str]], ros_domain: int,
                                     a1_bundle: Path, tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    proc = start_deploy(a1_bundle, out, "--cmd-vel", "0.3", "0", "0")
    proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers
    stdout, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, stdout
    assert f"ROS_DOMAIN_ID={ros_domain}" in stdout
    stopped = json.loads(stdout.split("stopped ")[1].splitlines()[0].replace("'", '"'))
    assert stopped == {"cmd_vel": 0, "policy": 0, "sim_robot": 0, "recorder": 0}, stdout
    ticks = list(read_ticks(out / "bag"))
    seqs = [t.seq for t in ticks]
    assert seqs and seqs == list(range(len(seqs)))
    # a stalled process makes the state stale (backup ticks, each naming its reason), but nearly every tick runs
    # the policy even on a loaded machine
    assert sum(t.status == STATUS["policy"] for t in ticks) > 0.9 * len(ticks)
    assert all(t.reason for t in ticks if t.status != STATUS["policy"])
    assert ticks[-1].command[0] == 0.3


def test_bench_ros_prints_json(ros_domain: int, a1_bundle: Path, tmp_path: Path) -> None:
    env = dict(os.environ, ROS_AUTOMATIC_DISCOVERY_RANGE="LOCALHOST")
    proc = subprocess.run(_cli("bench", "ros", "--bundle", str(a1_bundle), "--samples", "100", "--blocks", "2",
                               "--sustain-s", "1", "--domain-id", str(ros_domain), "--log-dir", str(tmp_path)),
                          capture_output=True, text=True, timeout=180, env=env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    for key in ("policy_roundtrip_p50_us", "policy_roundtrip_p99_us", "echo_roundtrip_p50_us", "ratio",
                "sustain_missed_fraction", "sustain_ticks"):
        assert key in result, key
    assert result["policy_samples"] >= 90 and result["echo_samples"] >= 90
    assert result["ratio"] > 0 and result["sustain_ticks"] > 0
