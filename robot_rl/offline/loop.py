"""Loops shared by fine-tuning and the tests: offline training of any learner on its logged data, online
training of any learner in a VecEnv (with the safety chain in the loop when the environment has one), and
deterministic evaluation.

    learner = make_learner("iql", policy, IQLConfig(), LearnerSetup(offline=ReplayBuffer.from_transitions(data)))
    train_offline(learner, steps=20_000)
    run_online(learner, env, steps=50_000)      # the same learner goes on online (RLPD batches)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np

from robot_rl.learner import Learner


def train_offline(learner: Learner, steps: int, callback: Callable[[int, dict[str, float]], None] | None = None,
                  log_every: int = 1000) -> dict[str, float]:
    """`steps` updates of a learner that has logged data and collects nothing (one gradient step each); returns
    the mean losses of the last `log_every` updates (and passes them to `callback(step, losses)` every `log_every`
    updates)."""
    sums: dict[str, float] = {}
    count = 0
    last: dict[str, float] = {}
    for step in range(1, steps + 1):
        for k, v in learner.update().items():
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        if step % log_every == 0 or step == steps:
            last = {k: v / count for k, v in sums.items()}
            sums, count = {}, 0
            if callback is not None:
                callback(step, last)
    return last


def run_online(learner: Learner, env: Any, steps: int, seed: int = 0,
               callback: Callable[[int, dict[str, Any]], bool | None] | None = None,
               log_every: int = 1000) -> dict[str, Any]:
    """Collect at least `steps` transitions from a VecEnv with `learner`, updating after every
    `learner.rollout_steps` environment steps.

    Returns summary statistics: transitions, episodes finished, their mean return, safety interventions per
    transition, and the last losses. The callback gets (transitions so far, stats) every `log_every` transitions and
    may return True to stop.
    """
    obs = env.reset(seed=seed)
    returns: list[float] = []
    interventions = 0
    collected = 0
    losses: dict[str, float] = {}
    next_log = log_every
    while collected < steps:
        for _ in range(learner.rollout_steps):
            actions = learner.act(obs)
            obs, rew, term, trunc, info = env.step(actions)
            learner.process_env_step(obs, rew, term, trunc, info)
            interventions += int(np.count_nonzero(info["intervened"]))
            returns += [float(ep["return"]) for ep in info.get("episodes", [])]
            collected += env.num_envs
        losses = learner.update() or losses
        if callback is not None and collected >= next_log:
            while next_log <= collected:
                next_log += log_every
            stats = {"transitions": collected, "episodes": len(returns),
                     "return_mean": float(np.mean(returns[-20:])) if returns else float("nan"), **losses}
            if callback(collected, stats):
                break
    return {"transitions": collected, "episodes": len(returns),
            "return_mean": float(np.mean(returns)) if returns else float("nan"),
            "intervention_rate": interventions / max(collected, 1), **losses}


class Actor(Protocol):
    """What evaluation needs: deterministic actions for a batch of raw observations (a Policy, or any controller)."""

    def act(self, obs_raw: np.ndarray) -> np.ndarray: ...


def evaluate_policy(policy: Actor, env: Any, episodes: int, seed: int = 0,
                    max_steps: int = 100_000) -> dict[str, float]:
    """Deterministic evaluation in a VecEnv through the one evaluator (robot_rl.evaluation.evaluate: one episode per
    environment until `episodes` are collected), summarized as fine-tuning reports it: mean return and length, the
    share of episodes that ended in a fall (tasks that report `fell`), and safety interventions per step."""
    from robot_rl.evaluation import evaluate

    summary = evaluate(policy.act, env, episodes, seed, max_steps)
    found = summary["episodes"] > 0
    return {"episodes": summary["episodes"], "return_mean": summary.get("return_mean", float("nan")),
            "return_std": summary.get("return_std", float("nan")),
            "length_mean": summary.get("length_mean", float("nan")),
            "fell_rate": summary.get("fell_mean", 0.0) if found else float("nan"),
            "intervention_rate": summary["safety_intervention_rate"]}
