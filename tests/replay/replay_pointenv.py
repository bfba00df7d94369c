"""A tiny deterministic point-mass task with the VecEnv API (docs/interfaces.md), for fast learning tests.

State x in R^2, action a in [-1, 1]^2, x' = x + 0.2 a; reward 1 - |x'|; leaving |x|_inf > 2 terminates;
20 steps truncate. The optimal action points at the origin.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_rl.offline.buffer import Transitions


class PointVecEnv:
    obs_dim = 2
    act_dim = 2

    def __init__(self, num_envs: int, seed: int = 0, horizon: int = 20) -> None:
        self.num_envs = num_envs
        self.horizon = horizon
        self.rng = np.random.default_rng(seed)
        self.x = np.zeros((num_envs, 2))
        self.t = np.zeros(num_envs, int)
        self.ret = np.zeros(num_envs)

    def _init(self, n: int) -> np.ndarray:
        return self.rng.uniform(-1.5, 1.5, size=(n, 2))

    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self.rng = np.random.default_rng(seed)
        self.x = self._init(self.num_envs)
        self.t[:] = 0
        self.ret[:] = 0.0
        return self.x.astype(np.float32)

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        a = np.clip(actions, -1.0, 1.0)
        self.x = self.x + 0.2 * a
        rew = 1.0 - np.linalg.norm(self.x, axis=1)
        self.t += 1
        self.ret += rew
        term = np.abs(self.x).max(axis=1) > 2.0
        trunc = (self.t >= self.horizon) & ~term
        final = self.x.astype(np.float32).copy()
        done = term | trunc
        episodes = [{"return": float(self.ret[i]), "length": int(self.t[i])} for i in np.flatnonzero(done)]
        if done.any():
            self.x[done] = self._init(int(done.sum()))
            self.t[done] = 0
            self.ret[done] = 0.0
        info = {"final_obs": final, "episodes": episodes, "applied_action": a.astype(np.float32),
                "intervened": np.zeros(len(a), bool)}
        return self.x.astype(np.float32), rew.astype(np.float32), term, trunc, info


def expert(obs: np.ndarray) -> np.ndarray:
    """Move towards the origin at full speed (clipped)."""
    return np.clip(-obs / 0.2, -1.0, 1.0)


def collect(policy: Any, num_envs: int, steps: int, seed: int) -> Transitions:
    """Roll `policy(obs) -> actions` for `steps` vector steps; return the transitions."""
    env = PointVecEnv(num_envs, seed)
    obs = env.reset(seed=seed)
    parts = []
    for _ in range(steps):
        act = policy(obs).astype(np.float32)
        nxt, rew, term, trunc, info = env.step(act)
        done = term | trunc
        real_next = nxt.copy()
        real_next[done] = info["final_obs"][done]
        parts.append(Transitions(obs=obs, action=np.clip(act, -1, 1), reward=rew, next_obs=real_next,
                                 terminated=term, truncated=trunc, intervened=np.zeros(num_envs, bool)))
        obs = nxt
    return Transitions.concat(parts)
