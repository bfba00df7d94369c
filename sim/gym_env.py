"""Gymnasium single-environment adapter over the vectorized environment (same model, task and randomization), so
libraries such as Stable-Baselines3 run the very task robot_rl trains on."""

from __future__ import annotations

from typing import Any

import gymnasium
import numpy as np

from robot_rl.sim.registry import TaskSpec


class GymEnv(gymnasium.Env):
    """One environment of `task`. The safety chain is off by default: external learners store the raw action."""

    metadata = {"render_modes": ["rgb_array"], "render_fps": 50}

    def __init__(self, task: str = "a1_walk", render_mode: str | None = None, cfg: Any = None,
                 overrides: list[str] | None = None, safety: bool = False, seed: int = 0) -> None:
        from robot_rl.sim import make_vec_env

        self._env = make_vec_env(task, 1, seed, cfg=cfg, overrides=overrides, safety=safety)
        self.contract = self._env.contract
        self.render_mode = render_mode
        self.metadata = {**self.metadata, "render_fps": int(round(1.0 / self._env.policy_dt))}
        bound = max(t.clip for t in self.contract.obs_terms)  # every term is clipped to +-clip after scaling
        self.observation_space = gymnasium.spaces.Box(-bound, bound, (self._env.obs_dim,), np.float32)
        self.action_space = gymnasium.spaces.Box(-1.0, 1.0, (self._env.act_dim,), np.float32)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[np.ndarray, dict]:
        super().reset(seed=seed)
        obs = self._env.reset(seed=seed)
        return obs[0], {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        obs, reward, terminated, truncated, info = self._env.step(np.asarray(action, np.float64)[None])
        done = bool(terminated[0] or truncated[0])
        out = {"reward_terms": {k: float(v[0]) for k, v in info["reward_terms"].items()},
               "applied_action": info["applied_action"][0]}
        if info["episodes"]:
            out["episode_metrics"] = info["episodes"][0]
        return (info["final_obs"][0] if done else obs[0]), float(reward[0]), bool(terminated[0]), \
            bool(truncated[0]), out

    def render(self) -> np.ndarray | None:
        return self._env.render(0) if self.render_mode == "rgb_array" else None

    def close(self) -> None:
        self._env.close()


def register_gym(spec: TaskSpec) -> None:
    """Register `spec.gym_id` with Gymnasium (idempotent)."""
    if spec.gym_id and spec.gym_id not in gymnasium.registry:
        gymnasium.register(id=spec.gym_id, entry_point="robot_rl.sim.gym_env:GymEnv", kwargs={"task": spec.name})
