"""The one evaluator: one episode per environment, interventions counted on the steps of environments still in
their first episode, the same for `robot-rl eval` and fine-tuning's evaluation."""

from __future__ import annotations

import json

import numpy as np

from robot_rl.evaluation import evaluate
from robot_rl.runner import make_env

SHORT = ["termination.episode_length_s=1.0"]


class _Counting:
    """The real A1 env, with the per-step intervention flags and episode ends kept for the test to count."""

    def __init__(self, env) -> None:
        self.env, self.num_envs, self.steps = env, env.num_envs, []

    def reset(self, seed=None):
        return self.env.reset(seed=seed)

    def step(self, actions):
        out = self.env.step(actions)
        self.steps.append((np.asarray(out[4]["intervened"], bool).copy(),
                           np.asarray(out[2]) | np.asarray(out[3])))
        return out


def test_interventions_are_counted_on_first_episodes_only() -> None:
    """Environments whose episodes end at different steps: a finished environment's later steps do not count."""
    env = make_env("a1_walk", 3, seed=0, overrides=SHORT)
    rng = np.random.default_rng(0)
    try:
        counting = _Counting(env)
        # large random actions: the rate limiter corrects some rows and not others
        summary = evaluate(lambda obs: rng.uniform(-4, 4, (3, env.act_dim)), counting, episodes=3, seed=0)
    finally:
        env.close()
    done = np.zeros(3, bool)
    hits = steps = after = 0
    for flags, finished in counting.steps:
        hits += int(flags[~done].sum())
        steps += int((~done).sum())
        after += int(flags[done].sum())
        done |= finished
    assert summary["episodes"] == 3.0 and 0 < hits < steps
    assert after > 0, "an environment must run on after its first episode (one fell early), or the test shows nothing"
    assert summary["safety_intervention_rate"] == hits / steps


def test_bundle_safety_goes_through_the_env_api() -> None:
    """`use_bundle_safety` swaps the chain through `use_safety_chain`: the contract's chain on a robot_rl env, none
    on a Gymnasium env (whose contract has no chain), and a Gymnasium env refuses a chain in one line."""
    import pytest

    from robot_rl.errors import ConfigError
    from robot_rl.evaluation import use_bundle_safety
    from robot_rl.sim.env import load_safety_chain

    env = make_env("a1_walk", 1, seed=0, safety=False)
    try:
        assert env.safety_chain is None
        use_bundle_safety(env, env.contract)
        assert env.safety_chain is not None and env.control_step.certifier is not None
        env.step(np.zeros((1, env.act_dim)))
        chain = load_safety_chain(env.contract)
    finally:
        env.close()
    gym_env = make_env("gym:Pendulum-v1", 1, seed=0)
    try:
        use_bundle_safety(gym_env, gym_env.contract)
        with pytest.raises(ConfigError, match="without a safety chain"):
            gym_env.use_safety_chain(chain)
    finally:
        gym_env.close()


def test_eval_takes_its_config_and_task_overrides_as_fields(tmp_path, capsys) -> None:  # type: ignore[no-untyped-def]
    """`robot-rl eval` settings are EvalConfig fields: the task overrides are `task_overrides` (from --set or
    --task-overrides, items with brackets intact; the list flag joined them unquoted before), and an unknown task key
    reaches the task config and is refused in one line, exit 2, before anything is written."""
    import argparse

    import torch

    from robot_rl.bundle import export_bundle
    from robot_rl.cli import main
    from robot_rl.commands.evaluate import EvalConfig, add_arguments
    from robot_rl.config import config_from_args

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["b", "--episodes", "3", "--task-overrides", "commands.vx=[0.5,0.5]", "commands.vy=[0,0]",
                              "--set", "seed=7"])
    assert config_from_args(EvalConfig, args) == EvalConfig(
        episodes=3, seed=7, task_overrides=["commands.vx=[0.5,0.5]", "commands.vy=[0,0]"])

    env = make_env("panda_reach", 1, seed=0, safety=False)
    contract = env.contract.replace(obs_mean=[0.0] * env.obs_dim, obs_std=[1.0] * env.obs_dim)
    env.close()
    bundle = export_bundle(tmp_path / "bundle", contract, torch.nn.Linear(contract.obs_dim, contract.act_dim), {})
    out = tmp_path / "eval.json"
    assert main(["eval", str(bundle), "--episodes", "1", "--out", str(out),
                 "--set", 'task_overrides=["nosuch_section.key=1"]']) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "nosuch_section" in err[0], err
    assert not out.exists()
    assert main(["eval", str(bundle), "--episodes", "1", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["episodes"] == 1.0
