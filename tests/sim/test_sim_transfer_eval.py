"""Sim-to-sim: `robot-rl eval BUNDLE --backend pybullet` runs a bundle through its contract only; a bundle whose
contract does not match the robot is refused with one line; `robot-rl bench transfer` reports both engines."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
import torch

from robot_rl.bundle import export_bundle
from robot_rl.cli import main
from robot_rl.contract import PolicyContract
from robot_rl.sim import make_vec_env


class _Toward(torch.nn.Module):
    """A fixed linear policy: ee_delta = clip(ee_to_goal / scale) read from the raw observation (no training)."""

    def __init__(self, contract: PolicyContract) -> None:
        super().__init__()
        col, start = 0, -1
        for term in contract.obs_terms:
            if term.name == "extra.ee_to_goal":
                start = col
            col += term.dim * term.history
        weight = torch.zeros(contract.act_dim, contract.obs_dim)
        for i in range(3):
            weight[i, start + i] = 1.0 / contract.action.scale
        self.register_buffer("weight", weight)

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.clamp(obs @ self.weight.T, -1.0, 1.0)


def _bundle(tmp_path: Path, contract: PolicyContract | None = None,
            name: str = "bundle") -> tuple[Path, PolicyContract]:
    env = make_vec_env("panda_reach", 1, seed=0, safety=False)
    base = env.contract
    env.close()
    c = contract or base
    c = c.replace(obs_mean=[0.0] * c.obs_dim, obs_std=[1.0] * c.obs_dim)  # the actor reads raw observations
    out = export_bundle(tmp_path / name, c, _Toward(base), {"note": "scripted"})
    return out, base


def _last_json(text: str) -> dict:
    return json.loads(text.strip().splitlines()[-1])


def test_eval_bundle_on_pybullet_through_the_contract(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle, _ = _bundle(tmp_path)
    assert main(["eval", str(bundle), "--backend", "pybullet", "--episodes", "3", "--seed", "1"]) == 0
    result = _last_json(capsys.readouterr().out)
    assert result["backend"] == "pybullet" and result["task"] == "panda_reach" and result["episodes"] == 3
    assert result["success_mean"] == 1.0 and result["final_distance_mean"] < 0.03
    assert result["safety_intervention_rate"] == 0.0 and result["fell_mean"] == 0.0


def test_mismatched_bundle_is_refused_with_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _, base = _bundle(tmp_path)
    renamed = base.replace(joint_names=[*base.joint_names[:7], "finger"])
    bundle, _ = _bundle(tmp_path, renamed, "renamed")
    assert main(["eval", str(bundle), "--backend", "pybullet", "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "robot lacks contract joints: finger" in err
    rescaled = base.replace(action=base.action.__class__(**{**base.action.__dict__, "scale": 0.1}))
    bundle, _ = _bundle(tmp_path, rescaled, "rescaled")
    assert main(["eval", str(bundle), "--backend", "pybullet", "--episodes", "1"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "bundle action ee_delta (scale 0.1)" in err


def test_bench_transfer_reports_both_engines(tmp_path: Path) -> None:
    from robot_rl.bench import transfer

    bundle, _ = _bundle(tmp_path)
    parser = argparse.ArgumentParser()
    transfer.add_arguments(parser)
    out = transfer.run(parser.parse_args(["--bundle", f"scripted={bundle}", "--episodes", "2"]))
    row = out["rows"][0]
    assert row["trained_in"] == "mujoco" and row["cross_engine"]["backend"] == "pybullet"
    assert row["in_engine"]["success_mean"] == row["cross_engine"]["success_mean"] == 1.0
    assert 0.9 < row["keep_return"] < 1.1 and row["keep_success"] == 1.0
