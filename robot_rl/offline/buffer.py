"""The typed transition record shared by logged datasets and online replay, a preallocated ring buffer, and
RLPD-style symmetric sampling (half of every batch from logged data, half from fresh data; Ball et al. 2023).

`terminated` ends the return (no bootstrap); `truncated` only ends the episode (time limit, e-stop, log gap): the
learners bootstrap from `next_obs` there, so a time limit does not look like a failure.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

import numpy as np
import torch


@dataclass
class Batch:
    """Transitions as float32 torch tensors (terminated as 0/1 float), what the learners' `update` takes."""

    obs: torch.Tensor
    action: torch.Tensor
    reward: torch.Tensor
    next_obs: torch.Tensor
    terminated: torch.Tensor


@dataclass
class Transitions:
    """A set of (s, a, r, s', terminated, truncated) records as numpy arrays with a leading dimension N."""

    obs: np.ndarray
    """(N, obs_dim) float32 raw (un-normalized) observations."""
    action: np.ndarray
    """(N, act_dim) float32 applied actions (after the safety chain: what the robot executed)."""
    reward: np.ndarray
    """(N,) float32."""
    next_obs: np.ndarray
    """(N, obs_dim) float32 observation after the action (the real final observation at an episode end)."""
    terminated: np.ndarray
    """(N,) bool: the episode ended in a terminal state (fall), no bootstrap."""
    truncated: np.ndarray
    """(N,) bool: the episode was cut (time limit, e-stop, log gap); bootstrap from next_obs."""
    intervened: np.ndarray
    """(N,) bool: the safety chain changed the policy's targets at this step."""

    def __post_init__(self) -> None:
        n = len(self.reward)
        for f in fields(self):
            value = getattr(self, f.name)
            if len(value) != n:
                raise ValueError(f"Transitions.{f.name} has {len(value)} rows, reward has {n}")

    def __len__(self) -> int:
        return len(self.reward)

    @property
    def obs_dim(self) -> int:
        return int(self.obs.shape[1])

    @property
    def act_dim(self) -> int:
        return int(self.action.shape[1])

    @classmethod
    def empty(cls, obs_dim: int, act_dim: int, n: int = 0) -> Transitions:
        return cls(obs=np.zeros((n, obs_dim), np.float32), action=np.zeros((n, act_dim), np.float32),
                   reward=np.zeros(n, np.float32), next_obs=np.zeros((n, obs_dim), np.float32),
                   terminated=np.zeros(n, bool), truncated=np.zeros(n, bool), intervened=np.zeros(n, bool))

    @classmethod
    def concat(cls, parts: list[Transitions]) -> Transitions:
        if not parts:
            raise ValueError("no transitions to concatenate")
        return cls(**{f.name: np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(cls)})

    def index(self, idx: np.ndarray | slice) -> Transitions:
        return Transitions(**{f.name: getattr(self, f.name)[idx] for f in fields(self)})

    def torch(self) -> Batch:
        return Batch(obs=torch.from_numpy(np.ascontiguousarray(self.obs, np.float32)),
                     action=torch.from_numpy(np.ascontiguousarray(self.action, np.float32)),
                     reward=torch.from_numpy(np.ascontiguousarray(self.reward, np.float32)),
                     next_obs=torch.from_numpy(np.ascontiguousarray(self.next_obs, np.float32)),
                     terminated=torch.from_numpy(self.terminated.astype(np.float32)))


class ReplayBuffer:
    """Fixed-capacity ring buffer of Transitions (arrays preallocated once)."""

    def __init__(self, capacity: int, obs_dim: int, act_dim: int) -> None:
        if capacity < 1:
            raise ValueError("replay capacity must be >= 1")
        self.capacity = capacity
        self.data = Transitions.empty(obs_dim, act_dim, capacity)
        self.size = 0
        self._next = 0

    @classmethod
    def from_transitions(cls, data: Transitions, capacity: int | None = None) -> ReplayBuffer:
        buf = cls(max(capacity or len(data), len(data), 1), data.obs_dim, data.act_dim)
        buf.add(data)
        return buf

    def __len__(self) -> int:
        return self.size

    def add(self, batch: Transitions) -> None:
        """Append rows, overwriting the oldest when full."""
        n = len(batch)
        if n == 0:
            return
        if n > self.capacity:
            batch = batch.index(slice(n - self.capacity, n))
            n = self.capacity
        idx = (self._next + np.arange(n)) % self.capacity
        for f in fields(Transitions):
            getattr(self.data, f.name)[idx] = getattr(batch, f.name)
        self._next = int((self._next + n) % self.capacity)
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int, rng: np.random.Generator) -> Transitions:
        if self.size == 0:
            raise ValueError("cannot sample from an empty replay buffer")
        return self.data.index(rng.integers(0, self.size, size=n))

    def all(self) -> Transitions:
        return self.data.index(slice(0, self.size))


def sample_symmetric(offline: ReplayBuffer | None, online: ReplayBuffer | None, n: int, rng: np.random.Generator,
                     offline_fraction: float = 0.5) -> Transitions:
    """RLPD symmetric sampling: `offline_fraction` of the batch from logged data, the rest from online data; all
    from whichever buffer is non-empty when the other is missing or empty."""
    has_off = offline is not None and len(offline) > 0
    has_on = online is not None and len(online) > 0
    if has_off and has_on:
        k = int(round(n * offline_fraction))
        assert offline is not None and online is not None
        return Transitions.concat([offline.sample(k, rng), online.sample(n - k, rng)])
    if has_off:
        assert offline is not None
        return offline.sample(n, rng)
    if has_on:
        assert online is not None
        return online.sample(n, rng)
    raise ValueError("both replay buffers are empty")


def step_transitions(obs: np.ndarray, actions: np.ndarray, next_obs: np.ndarray, rewards: np.ndarray,
                     terminated: np.ndarray, truncated: np.ndarray, info: dict[str, Any],
                     action_clip: float) -> Transitions:
    """The transitions of one VecEnv step: the applied (safety-filtered) action when the env reports it, clipped
    to the contract's range; the real final observation (info["final_obs"]) where an episode ended."""
    term = np.asarray(terminated, bool)
    trunc = np.asarray(truncated, bool) & ~term
    nxt = np.asarray(next_obs, np.float32).copy()
    done = term | trunc
    if done.any() and "final_obs" in info:
        nxt[done] = np.asarray(info["final_obs"], np.float32)[done]
    applied = info.get("applied_action")
    action = np.clip(actions if applied is None else np.asarray(applied, np.float32), -action_clip, action_clip)
    return Transitions(obs=np.asarray(obs, np.float32), action=action.astype(np.float32),
                       reward=np.asarray(rewards, np.float32), next_obs=nxt, terminated=term, truncated=trunc,
                       intervened=np.asarray(info["intervened"], bool).copy())
