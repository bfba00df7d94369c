"""Training loops shared by the learners: offline epochs over logged transitions, online SAC fine-tuning in a
VecEnv (with the safety chain in the loop when the environment has one), and evaluation.

    learner = make_learner("iql", policy)
    train_offline(learner, data, steps=20_000)
    sac = SAC(policy, SACConfig(warmup_steps=0), offline=ReplayBuffer.from_transitions(data))
    run_online(sac, env, steps=50_000)
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from robot_rl.errors import ConfigError
from robot_rl.offline.bc import BC, BCConfig
from robot_rl.offline.buffer import (
    Batch,
    ReplayBuffer,
    Transitions,
    intervened_mask,
    sample_symmetric,
    step_transitions,
)
from robot_rl.offline.iql import IQL, IQLConfig
from robot_rl.offline.policy import Policy
from robot_rl.offline.sac import SAC, SACConfig
from robot_rl.offline.td3bc import TD3BC, TD3BCConfig

LEARNER_CONFIGS: dict[str, type] = {"bc": BCConfig, "td3bc": TD3BCConfig, "iql": IQLConfig, "sac": SACConfig}


class OfflineLearner(Protocol):
    policy: Policy

    def update(self, batch: Batch) -> dict[str, float]: ...


class _SACOffline:
    """SAC trained on a fixed batch source (no collection): critic and actor on logged data only."""

    def __init__(self, sac: SAC) -> None:
        self.sac = sac
        self.policy = sac.policy

    def update(self, batch: Batch) -> dict[str, float]:
        out = self.sac.update_critic(batch)
        out.update(self.sac.update_actor(batch))
        return out


class OnlineLearner:
    """An offline learner (IQL, TD3+BC) continued online: collects with the policy's Gaussian, keeps its critics,
    and updates on batches drawn half from the logged data, half from fresh data (RLPD). The same
    act / process_env_step / update interface as SAC; IQL's advantage-weighted actor never chases critic errors
    outside the data, which makes it the stable choice for offline-to-online fine-tuning."""

    def __init__(self, learner: OfflineLearner, offline: ReplayBuffer | None, batch_size: int = 256,
                 utd_ratio: float = 1.0, action_clip: float = 1.0, buffer_size: int = 1_000_000,
                 offline_fraction: float = 0.5, seed: int = 0) -> None:
        self.learner = learner
        self.policy = learner.policy
        self.offline = offline
        self.online = ReplayBuffer(buffer_size, self.policy.obs_dim, self.policy.act_dim)
        self.batch_size, self.utd_ratio, self.action_clip = batch_size, utd_ratio, action_clip
        self.offline_fraction = offline_fraction
        self.rng = np.random.default_rng(seed)
        self._pending = 0
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    def act(self, obs: np.ndarray) -> np.ndarray:
        self._obs = np.asarray(obs, np.float32).copy()
        self._actions = self.policy.act(self._obs, deterministic=False).astype(np.float32)
        return self._actions

    def process_env_step(self, next_obs: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                         truncated: np.ndarray, info: dict[str, Any]) -> None:
        if self._obs is None or self._actions is None:
            raise RuntimeError("process_env_step() before act()")
        batch = step_transitions(self._obs, self._actions, next_obs, rewards, terminated, truncated, info,
                                 self.action_clip)
        self.online.add(batch)
        self._pending += len(batch)
        self._obs = self._actions = None

    def update(self) -> dict[str, float]:
        n = max(1, int(round(self.utd_ratio * self._pending)))
        self._pending = 0
        out: dict[str, float] = {}
        for _ in range(n):
            batch = sample_symmetric(self.offline, self.online, self.batch_size, self.rng, self.offline_fraction)
            out = self.learner.update(batch.torch())
        return out


class OnlineAgent(Protocol):
    policy: Policy

    def act(self, obs: np.ndarray) -> np.ndarray: ...

    def process_env_step(self, next_obs: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                         truncated: np.ndarray, info: dict[str, Any]) -> None: ...

    def update(self) -> dict[str, float]: ...


def make_learner(algo: str, policy: Policy, cfg: Any = None, seed: int = 0) -> OfflineLearner:
    """An offline learner by name ("bc", "td3bc", "iql", "sac") around `policy`."""
    if algo not in LEARNER_CONFIGS:
        raise ConfigError(f"unknown algorithm '{algo}' (choose from {', '.join(LEARNER_CONFIGS)})")
    if cfg is None:
        cfg = LEARNER_CONFIGS[algo]()
    elif not isinstance(cfg, LEARNER_CONFIGS[algo]):
        raise ConfigError(f"{algo} expects a {LEARNER_CONFIGS[algo].__name__}, got {type(cfg).__name__}")
    if algo == "bc":
        return BC(policy, cfg)
    if algo == "td3bc":
        return TD3BC(policy, cfg)
    if algo == "iql":
        return IQL(policy, cfg)
    return _SACOffline(SAC(policy, cfg, seed=seed))


def train_offline(learner: OfflineLearner, data: Transitions, steps: int, batch_size: int = 256, seed: int = 0,
                  callback: Callable[[int, dict[str, float]], None] | None = None,
                  log_every: int = 1000) -> dict[str, float]:
    """`steps` gradient updates on uniformly sampled batches of `data`; returns the mean losses of the last
    `log_every` updates (and passes them to `callback(step, losses)` every `log_every` updates)."""
    if len(data) == 0:
        raise ConfigError("the dataset has no transitions to learn from")
    rng = np.random.default_rng(seed)
    torch.manual_seed(seed)
    sums: dict[str, float] = {}
    count = 0
    last: dict[str, float] = {}
    for step in range(1, steps + 1):
        batch = data.index(rng.integers(0, len(data), size=batch_size)).torch()
        for k, v in learner.update(batch).items():
            sums[k] = sums.get(k, 0.0) + v
        count += 1
        if step % log_every == 0 or step == steps:
            last = {k: v / count for k, v in sums.items()}
            sums, count = {}, 0
            if callback is not None:
                callback(step, last)
    return last


def run_online(sac: OnlineAgent, env: Any, steps: int, seed: int = 0,
               callback: Callable[[int, dict[str, Any]], bool | None] | None = None,
               log_every: int = 1000) -> dict[str, Any]:
    """Collect `steps` transitions from a VecEnv with an online agent (SAC or OnlineLearner), updating after every
    env step.

    Returns summary statistics: episodes finished, their mean return, safety interventions per transition. The
    callback gets (transitions so far, stats) every `log_every` transitions and may return True to stop.
    """
    obs = env.reset(seed=seed)
    returns: list[float] = []
    interventions = 0
    collected = 0
    losses: dict[str, float] = {}
    next_log = log_every
    while collected < steps:
        actions = sac.act(obs)
        obs, rew, term, trunc, info = env.step(actions)
        sac.process_env_step(obs, rew, term, trunc, info)
        interventions += int(intervened_mask(info, env.num_envs).sum())
        returns += [float(ep["return"]) for ep in info.get("episodes", [])]
        losses = sac.update() or losses
        collected += env.num_envs
        if callback is not None and collected >= next_log:
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
