"""Offline rewards are the online environment's: every term a log allows is rebuilt (feet air time and collisions
from the recorded contact forces), and the terms a log cannot rebuild are left out of the dataset's reward, listed
in its report, and weighted 0 in finetune's online environment, so that the two halves of its batches share one
reward function."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.cli import main
from robot_rl.dataset import load_dataset, reward_terms
from robot_rl.logs import SimLog, write_tick_bag

from .conftest import record_a1_log

torch.set_num_threads(1)

OVERRIDES = ["randomization.enabled=false", "termination.contacts=[trunk]", "termination.max_tilt=1.5",
             "commands.vx=[0.8, 0.8]", "rewards.collision=-2.0", "rewards.feet_air_time=3.0"]
"""A forward command (the air-time reward pays only when asked to move), legs allowed to touch the ground without
ending the episode (collisions happen), weights changed from the defaults (replay must use the bundle's)."""


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, SimLog, list[dict[str, float]], object]:
    log, scored, contract = record_a1_log(OVERRIDES, 100)
    return tmp_path_factory.mktemp("rewards"), log, scored, contract


def test_contact_terms_are_the_simulators_tick_for_tick(recorded) -> None:  # type: ignore[no-untyped-def]
    """A log recorded from the simulator with its contact forces: feet air time (the swing of every touchdown,
    counted from the episode's start) and collisions (thighs and calves touching) equal the environment's terms
    at every transition, and no term is left out."""
    tmp, log, scored, contract = recorded
    bag = write_tick_bag(tmp / "with_contacts", log, contract)
    assert main(["replay", str(bag), "--out", str(tmp / "ds_contacts")]) == 0
    ds = load_dataset(tmp / "ds_contacts")
    (ep,) = ds.episodes
    assert len(ep) == 99
    for name in ("feet_air_time", "collision"):
        sim = np.array([s[name] for s in scored[:99]])
        assert np.count_nonzero(sim) >= 1, name  # the term is live in this log
        np.testing.assert_allclose(ep.infos[f"reward.{name}"][1:], sim, rtol=1e-12, atol=1e-15, err_msg=name)
    rebuilt, left_out = reward_terms(ds.metadata)
    assert left_out == {} and {"feet_air_time", "collision", "torques", "tracking_lin_vel"} <= set(rebuilt)
    report = json.loads((tmp / "ds_contacts" / "report.json").read_text())
    assert report["reward_terms"]["left_out"] == {} and "feet_air_time" in report["reward_terms"]["rebuilt"]


def test_a_log_without_contacts_leaves_them_out_offline_and_online(recorded, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """The same log without its contacts topic: feet air time and collisions are left out of the dataset's reward
    (not scored as zero), the report says which and why, the rewards are the sum of the rebuilt terms, and
    finetune --online trains in an environment whose reward gives exactly those two terms weight 0."""
    from robot_rl.bundle import load_bundle, task_config_of
    from robot_rl.networks import Policy
    from robot_rl.offline.finetune import online_task_config
    from robot_rl.sim import make_vec_env

    tmp, log, _, contract = recorded
    bag = write_tick_bag(tmp_path / "no_contacts", log, contract, contacts=False)
    data = tmp_path / "ds"
    assert main(["replay", str(bag), "--out", str(data)]) == 0
    ds = load_dataset(data)
    rebuilt, left_out = reward_terms(ds.metadata)
    assert sorted(left_out) == ["collision", "feet_air_time"]
    assert all("contacts topic" in why for why in left_out.values())
    (ep,) = ds.episodes
    assert "reward.feet_air_time" not in ep.infos and "reward.collision" not in ep.infos
    total = np.clip(sum(ep.infos[f"reward.{name}"][1:] for name in rebuilt), 0.0, None)
    np.testing.assert_allclose(ep.rewards, total, rtol=1e-6, atol=1e-7)
    md = (data / "report.md").read_text()
    assert "`feet_air_time`" in md and "`collision`" in md and "Left out" in md
    report = json.loads((data / "report.json").read_text())
    assert sorted(report["reward_terms"]["left_out"]) == ["collision", "feet_air_time"]

    policy = Policy(contract.obs_dim, contract.act_dim, (32, 32))
    bundle = policy.export(tmp_path / "bundle", contract, {}, {})
    out = tmp_path / "tuned"
    assert main(["finetune", str(bundle), "--data", str(data), "--steps", "0", "--online", "--online-algo", "ppo",
                 "--online-steps", "48", "--num-envs", "2", "--out", str(out)]) == 0
    prov = load_bundle(out).contract.provenance["finetune"]
    assert prov["online_reward_left_out"] == ["collision", "feet_air_time"]
    trained = task_config_of(load_bundle(bundle).contract)
    assert trained is not None and trained[1].rewards.collision == -2.0
    cfg = online_task_config("a1_walk", prov["env_overrides"], prov["online_reward_left_out"], trained[1])
    assert cfg.rewards.feet_air_time == 0.0 and cfg.rewards.collision == 0.0
    assert cfg.rewards.torques != 0.0 and cfg.commands.vx == (0.8, 0.8)  # the rest as the bundle was trained
    assert trained[1].rewards.collision == -2.0  # derived, not mutated
    env = make_vec_env("a1_walk", 1, 0, cfg=cfg)
    try:
        _, _, _, _, info = env.step(np.zeros((1, contract.act_dim)))
    finally:
        env.close()
    weighted = {k for k, w in env.task.reward_weights.items() if w != 0.0}
    assert set(info["reward_terms"]) == weighted
    assert weighted == set(rebuilt) | {"safety_intervened"}  # the online intervention penalty, added by finetune
