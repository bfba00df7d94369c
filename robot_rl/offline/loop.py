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
from robot_rl.offline.buffer import intervened_mask


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
            interventions += int(intervened_mask(info, env.num_envs).sum())
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
    """Deterministic evaluation in a VecEnv: one episode per environment until `episodes` are collected; mean
    return and length, the share of episodes that ended in a fall (tasks that report `fell`), and safety
    interventions per step (from info["safety"]["safety/intervened"])."""
    obs = env.reset(seed=seed)
    done_once = np.zeros(env.num_envs, bool)
    active = np.ones(env.num_envs, bool)
    results: list[dict[str, Any]] = []
    steps = interventions = 0
    for _ in range(max_steps):
        obs, _, term, trunc, info = env.step(policy.act(obs))
        interventions += int(intervened_mask(info, env.num_envs)[active].sum())
        steps += int(active.sum())
        finished = np.flatnonzero(np.asarray(term) | np.asarray(trunc))
        eps = info.get("episodes", [])
        for i, ep in zip(finished, eps):
            if not done_once[i]:
                done_once[i] = True
                active[i] = False
                results.append(ep)
        if len(results) >= episodes or not active.any():
            break
    rets = np.array([float(ep["return"]) for ep in results]) if results else np.array([np.nan])
    return {"episodes": float(len(results)), "return_mean": float(rets.mean()), "return_std": float(rets.std()),
            "length_mean": float(np.mean([ep["length"] for ep in results])) if results else float("nan"),
            "fell_rate": float(np.mean([bool(ep.get("fell", False)) for ep in results])) if results else float("nan"),
            "intervention_rate": interventions / max(steps, 1)}
