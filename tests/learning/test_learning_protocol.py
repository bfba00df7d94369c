"""The one learner protocol: every registered algorithm acts, processes steps, updates and round-trips its state
through a checkpoint file; the runner trains any of them (SAC must improve on a small task) and exports its
bundle."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

from robot_rl.cli import main
from robot_rl.config import load_config
from robot_rl.evaluation import evaluate
from robot_rl.learner import Learner, LearnerSetup, algorithms, make_learner
from robot_rl.offline.bc import BCConfig
from robot_rl.offline.iql import IQLConfig
from robot_rl.offline.offpolicy import ActorConfig, CriticConfig, ReplayConfig
from robot_rl.offline.sac import SACConfig
from robot_rl.offline.td3bc import TD3BCConfig
from robot_rl.ppo import PPOConfig
from robot_rl.runner import Runner, TrainConfig, load_checkpoint, make_env, save_checkpoint

_REPLAY = ReplayConfig(batch_size=32, warmup_steps=0, update_every=2)
_ACTOR = ActorConfig(hidden=[16])
_CRITIC = CriticConfig(hidden=[16])
SMALL: dict[str, Any] = {
    "ppo": PPOConfig(num_steps=4, num_minibatches=2, actor_hidden=[16], critic_hidden=[16]),
    "sac": SACConfig(replay=_REPLAY, actor=_ACTOR, critic=_CRITIC),
    "iql": IQLConfig(replay=_REPLAY, actor=_ACTOR, critic=_CRITIC),
    "td3bc": TD3BCConfig(replay=_REPLAY, actor=_ACTOR, critic=_CRITIC, policy_delay=1),
    "bc": BCConfig(replay=_REPLAY, actor=_ACTOR),
}
"""A small config of every registered algorithm (a new algorithm adds its own here)."""


def _collect_and_update(learner: Learner, env: Any, obs: np.ndarray) -> tuple[np.ndarray, dict[str, float]]:
    for _ in range(learner.rollout_steps):
        actions = learner.act(obs)
        assert actions.shape == (env.num_envs, env.act_dim)
        obs, rew, term, trunc, info = env.step(actions)
        learner.process_env_step(obs, rew, term, trunc, info)
    return obs, learner.update()


def test_every_registered_algorithm_has_a_small_config() -> None:
    assert set(SMALL) == set(algorithms())


@pytest.mark.parametrize("name", sorted(algorithms()))
def test_registered_learner_follows_the_protocol(name: str, tmp_path: Path) -> None:
    torch.manual_seed(0)
    env = make_env("gym:Pendulum-v1", 4, 0)
    cfg = SMALL[name]
    setup = LearnerSetup(num_envs=4, action_clip=env.contract.action.clip, seed=0)
    new_policy = algorithms()[name].new_policy
    learner = make_learner(name, new_policy(cfg, env.obs_dim, env.act_dim), cfg, setup)
    start = [p.detach().clone() for p in learner.policy.parameters()]
    obs = env.reset(seed=0)
    for _ in range(2):
        obs, losses = _collect_and_update(learner, env, obs)
        assert losses and all(isinstance(v, float) and np.isfinite(v) for v in losses.values()), losses
    assert any(not torch.equal(a, b) for a, b in zip(start, learner.policy.parameters()))

    # state through a checkpoint file (weights only) into a fresh learner: it acts the same
    path = save_checkpoint(tmp_path / "learner.pt", {"learner": learner.state_dict()})
    state = torch.load(path, map_location="cpu", weights_only=True)["learner"]
    again = make_learner(name, new_policy(cfg, env.obs_dim, env.act_dim), cfg, setup)
    again.load_state_dict(state)
    probe = np.random.default_rng(1).normal(size=(8, env.obs_dim)).astype(np.float32)
    np.testing.assert_array_equal(again.policy.act(probe), learner.policy.act(probe))
    for key, value in learner.policy.state_dict().items():
        assert torch.equal(value, again.policy.state_dict()[key]), key
    # and goes on learning from where it was
    _, losses = _collect_and_update(again, env, env.reset(seed=1))
    assert all(np.isfinite(v) for v in losses.values())
    env.close()


def test_learner_refuses_a_config_of_another_algorithm() -> None:
    from robot_rl.errors import ConfigError
    from robot_rl.networks import Policy

    with pytest.raises(ConfigError, match="sac expects a SACConfig"):
        make_learner("sac", Policy(3, 1), PPOConfig())
    with pytest.raises(ConfigError, match="unknown algorithm 'nope'"):
        make_learner("nope", Policy(3, 1))


SAC_PENDULUM = ["task=gym:Pendulum-v1", "task_overrides=[]", "eval_overrides=[]", "algo=sac", "num_envs=8",
                "max_minutes=0", "max_env_steps=8000", "sac.replay.warmup_steps=400", "sac.replay.batch_size=128",
                "sac.actor.hidden=[64, 64]", "sac.critic.hidden=[64, 64]", "sac.actor.learning_rate=0.001",
                "sac.critic.learning_rate=0.001", "eval_episodes=4", "video=false"]


def test_tiny_sac_training_run_improves_and_exports(tmp_path: Path) -> None:
    cfg = load_config(TrainConfig, None, [*SAC_PENDULUM, f"runs_dir={tmp_path}"])
    runner = Runner(cfg, tmp_path / "run", progress=False)
    env = make_env("gym:Pendulum-v1", 4, 777)
    before = evaluate(runner.policy(), env, 4, seed=777)["return_mean"]
    runner.train()
    after = evaluate(runner.policy(), env, 4, seed=777)["return_mean"]
    env.close()
    assert after > before + 400.0, (before, after)  # untrained ~ -1000, trained ~ -150
    metrics = runner.finish()
    from robot_rl.bundle import load_bundle

    bundle = load_bundle(tmp_path / "run" / "bundle")
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(bundle.act(obs), runner.policy()(obs), atol=1e-5)
    assert bundle.metadata["metrics"]["return_mean"] == pytest.approx(metrics["return_mean"])
    assert bundle.metadata["config"]["algo"] == "sac"
    ckpt = load_checkpoint(tmp_path / "run" / "checkpoints" / f"model_{runner.iteration}.pt")
    assert ckpt["config"]["algo"] == "sac"


def test_train_sac_on_a_simulated_robot_task_from_the_command_line(tmp_path: Path,
                                                                   capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--set", "task=panda_reach", "algo=sac", "num_envs=2", "max_minutes=0",
                 "max_env_steps=64", "sac.replay.warmup_steps=16", "sac.replay.update_every=8", "eval_episodes=1",
                 "video=false", "--run-dir", str(run), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["env_steps"] == 64
    assert main(["export", str(run), "--out", str(tmp_path / "exported")]) == 0
    from robot_rl.bundle import load_bundle

    exported, trained = load_bundle(tmp_path / "exported"), load_bundle(run / "bundle")
    obs = np.random.default_rng(0).normal(size=(4, trained.contract.obs_dim)).astype(np.float32)
    np.testing.assert_allclose(exported.act(obs), trained.act(obs), atol=1e-6)
    assert main(["eval", str(run), "--episodes", "1"]) == 0


def test_unknown_algorithm_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--set", "algo=a3c", f"runs_dir={tmp_path}", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "algo" in err and "a3c" in err, err
    assert main(["train", "--set", "algo=sac", "sac.nope=1", f"runs_dir={tmp_path}", "--no-progress"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "sac.nope" in err, err
