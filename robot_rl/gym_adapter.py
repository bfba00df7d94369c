"""N Gymnasium environments behind the VecEnv API of docs/interfaces.md (raw float32 obs, terminated/truncated
separate, auto-reset, `info["final_obs"]`, `info["episodes"]`), so the PPO and the runner train on any Gymnasium task
(`task: gym:HalfCheetah-v5`) exactly as on the robot_rl simulator.

Policy actions live in [-1, 1] and are mapped affinely onto the environment's Box bounds (after clipping). The adapter
also provides a synthetic policy contract (one "joint" per action, the whole observation as `extra.obs`) so that
Gymnasium policies export as ordinary bundles.
"""

from __future__ import annotations

from typing import Any

import cv2
import gymnasium as gym
import numpy as np

from robot_rl.contract import ActionSpec, ObsTerm, PolicyContract
from robot_rl.errors import ConfigError

GYM_PREFIX = "gym:"


class GymVecEnv:
    """Steps `num_envs` copies of a Gymnasium environment sequentially in this process."""

    def __init__(self, env_id: str, num_envs: int, seed: int, render: bool = False, **kwargs: Any) -> None:
        if num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
        try:
            self.envs = [gym.make(env_id, render_mode="rgb_array" if render and i == 0 else None, **kwargs)
                         for i in range(num_envs)]
        except gym.error.Error as exc:
            raise ConfigError(f"gymnasium environment '{env_id}': {exc}") from None
        space = self.envs[0].action_space
        if not isinstance(space, gym.spaces.Box):
            raise ConfigError(f"gymnasium environment '{env_id}' needs a continuous (Box) action space")
        self.env_id = env_id
        self.num_envs = num_envs
        self.seed = seed
        self.obs_dim = int(np.prod(self.envs[0].observation_space.shape or (1,)))
        self.act_dim = int(np.prod(space.shape))
        self._low = np.asarray(space.low, np.float64).reshape(-1)
        self._high = np.asarray(space.high, np.float64).reshape(-1)
        self.cfg = None
        self.fps = float(self.envs[0].metadata.get("render_fps") or 30)
        self.contract = gym_contract(env_id, self.obs_dim, self.act_dim)
        self._obs = np.zeros((num_envs, self.obs_dim), np.float32)
        self._returns = np.zeros(num_envs)
        self._lengths = np.zeros(num_envs, np.int64)

    def _scale(self, action: np.ndarray) -> np.ndarray:
        a = np.clip(action, -1.0, 1.0)
        return self._low + (a + 1.0) * 0.5 * (self._high - self._low)

    def reset(self, seed: int | None = None) -> np.ndarray:
        base = self.seed if seed is None else seed
        for i, env in enumerate(self.envs):
            obs, _ = env.reset(seed=base + i)
            env.action_space.seed(base + i)
            self._obs[i] = np.asarray(obs, np.float32).reshape(-1)
        self._returns[:] = 0.0
        self._lengths[:] = 0
        return self._obs.copy()

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        actions = np.asarray(actions, np.float64).reshape(self.num_envs, self.act_dim)
        rewards = np.zeros(self.num_envs, np.float32)
        terminated = np.zeros(self.num_envs, bool)
        truncated = np.zeros(self.num_envs, bool)
        final_obs = np.zeros_like(self._obs)
        episodes: list[dict[str, float]] = []
        for i, env in enumerate(self.envs):
            obs, rew, term, trunc, _ = env.step(self._scale(actions[i]).astype(np.float32))
            rewards[i], terminated[i], truncated[i] = rew, term, trunc and not term
            self._returns[i] += rew
            self._lengths[i] += 1
            if term or trunc:
                final_obs[i] = np.asarray(obs, np.float32).reshape(-1)
                episodes.append({"return": float(self._returns[i]), "length": float(self._lengths[i])})
                self._returns[i] = 0.0
                self._lengths[i] = 0
                obs, _ = env.reset()
            self._obs[i] = np.asarray(obs, np.float32).reshape(-1)
        info = {"final_obs": final_obs, "episodes": episodes, "reward_terms": {},
                "intervened": np.zeros(self.num_envs, bool)}
        return self._obs.copy(), rewards, terminated, truncated, info

    def use_safety_chain(self, chain: Any) -> None:
        """The VecEnv call that swaps the safety chain: a Gymnasium task runs unfiltered, so only None is taken."""
        if chain is not None:
            raise ConfigError(f"gymnasium environment '{self.env_id}' runs without a safety chain")

    def render(self, env: int = 0, width: int = 640, height: int = 480) -> np.ndarray:
        if env != 0 or self.envs[0].render_mode != "rgb_array":
            raise ConfigError("GymVecEnv renders environment 0 only, and only when created with render=True")
        frame = np.asarray(self.envs[0].render(), np.uint8)
        if frame.shape[:2] != (height, width):
            return np.asarray(cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA), np.uint8)
        return frame

    def close(self) -> None:
        for env in self.envs:
            env.close()


def gym_contract(env_id: str, obs_dim: int, act_dim: int) -> PolicyContract:
    """Contract for a Gymnasium policy: actions in [-1, 1] (one pseudo-joint each), the raw observation as one term."""
    return PolicyContract(
        robot=f"{GYM_PREFIX}{env_id}",
        joint_names=[f"a{i}" for i in range(act_dim)],
        default_joint_pos=[0.0] * act_dim,
        joint_pos_lower=[-1.0] * act_dim,
        joint_pos_upper=[1.0] * act_dim,
        joint_vel_limit=[1.0] * act_dim,
        torque_limit=[1.0] * act_dim,
        kp=[0.0] * act_dim,
        kd=[0.0] * act_dim,
        action=ActionSpec(scale=1.0, clip=1.0),
        obs_terms=[ObsTerm("extra.obs", obs_dim)],
    )
