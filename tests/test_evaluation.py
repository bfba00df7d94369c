"""The one evaluator: one episode per environment, interventions counted on the steps of environments still in
their first episode, the same for `robot-rl eval` and fine-tuning's evaluation."""

from __future__ import annotations

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
