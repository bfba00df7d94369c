"""System identification recovers hidden parameters of the simulated robot from a log it recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from robot_rl.cli import main
from robot_rl.config import load_config
from robot_rl.logs import a1_contract, simulate_ticks, write_tick_bag
from robot_rl.sim import resolve_config

HIDDEN = {"friction": 0.6, "motor_strength": 0.8, "added_mass": 1.5, "latency": 3}


def test_sysid_recovers_hidden_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contract = a1_contract()
    rng = np.random.default_rng(0)
    log = simulate_ticks(contract, lambda o: 0.5 * rng.standard_normal(12), 300, params=HIDDEN, reset_every=100,
                         safety=False)
    bag = write_tick_bag(tmp_path / "bag", log, contract)
    ds = tmp_path / "ds"
    assert main(["replay", str(bag), "--out", str(ds), "--set", "ground_truth=/sim_robot/ground_truth"]) == 0
    out = tmp_path / "rand.yaml"
    assert main(["sysid", str(ds), "--robot", "a1", "--out", str(out), "--segments", "40", "--max-latency", "5",
                 "--horizon", "2"]) == 0
    import json

    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    values = result["values"]
    assert values["latency"] == HIDDEN["latency"]
    for key in ("friction", "motor_strength", "added_mass"):
        assert abs(values[key] - HIDDEN[key]) <= 0.15 * abs(HIDDEN[key]), (key, values[key])
        assert result["std"][key] >= 0.0
    assert result["cost"] < 0.1 * result["nominal_cost"]
    # the written config trains with randomization centred on the fit
    from robot_rl.runner import TrainConfig

    cfg = load_config(TrainConfig, out)
    task_cfg = resolve_config(cfg.task, None, cfg.task_overrides)
    r = task_cfg.randomization
    assert r.friction.low < values["friction"] < r.friction.high
    assert r.latency_steps.low <= 3 <= r.latency_steps.high
    assert "sysid" in out.read_text().splitlines()[0] and yaml.safe_load(out.read_text())["task"] == "a1_walk"
