"""The simulated robot's contact forces reach replay: `robot-rl deploy BUNDLE --sim mujoco --record BAG` records the
simulated A1's `/sim_robot/contacts`, so `robot-rl replay BAG` rebuilds the feet-air-time and collision reward terms
instead of leaving them out. Each process gets the test's own ROS_DOMAIN_ID; the CLI sets localhost-only discovery
for its children."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np

from robot_rl.dataset import load_dataset
from robot_rl.tick_record import read_ticks

A1 = Path(__file__).parent / "data" / "a1_walk"


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "robot_rl.cli", *args]


def test_deployed_a1_records_contacts_and_replay_rebuilds_contact_terms(
        start_deploy: Callable[..., subprocess.Popen[str]], tmp_path: Path) -> None:
    out = tmp_path / "deploy"
    proc = start_deploy(A1, out, "--cmd-vel", "0.4", "0", "0")
    proc.send_signal(signal.SIGINT)  # what Ctrl-C delivers
    stdout = proc.communicate(timeout=30)[0]
    assert proc.returncode == 0, stdout
    assert len(list(read_ticks(out / "bag"))) > 50

    data = tmp_path / "dataset"
    replay = subprocess.run(_cli("replay", str(out / "bag"), "--out", str(data), "--bundle", str(A1)),
                            capture_output=True, text=True, timeout=180)
    assert replay.returncode == 0, replay.stdout + replay.stderr
    terms = json.loads((data / "report.json").read_text())["reward_terms"]
    assert {"feet_air_time", "collision"} <= set(terms["rebuilt"]), terms
    assert "feet_air_time" not in terms["left_out"] and "collision" not in terms["left_out"], terms["left_out"]
    episodes = load_dataset(data).episodes
    assert episodes and all(np.all(np.isfinite(ep.infos[f"reward.{name}"])) for ep in episodes
                            for name in ("feet_air_time", "collision"))
