"""What the off-policy and offline learners (SAC, IQL, TD3+BC, BC) share: the replay, actor and critic settings,
the collection side of the learner protocol (`ReplayFeed`) and the protocol itself on top of an algorithm's
gradient step (`ReplayLearner`).

A learner records its sampled actions in `act`, turns the environment's answer into transitions in
`process_env_step` (the applied, safety-filtered action; the real final observation at episode ends), and draws
each gradient step's batch half from the logged data, half from fresh data (RLPD, Ball et al. 2023) when it has both.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from robot_rl.errors import ConfigError
from robot_rl.learner import LearnerSetup
from robot_rl.networks import Policy, check_init_std
from robot_rl.offline.buffer import Batch, ReplayBuffer, sample_symmetric, step_transitions


@dataclass(frozen=True)
class ReplayConfig:
    """Collection and sampling of an off-policy learner."""

    batch_size: int = 256
    """Transitions per gradient step, split between logged and online data when there are both (see
    offline_fraction)."""
    utd_ratio: float = 1.0
    """Gradient steps per collected transition (DroQ uses 20; 1 is plain SAC)."""
    update_every: int = 1
    """Environment steps collected between two updates (each update catches up with utd_ratio)."""
    offline_fraction: float = 0.5
    """Share of each batch drawn from the logged data when there is some (RLPD: 0.5)."""
    buffer_size: int = 1_000_000
    """Capacity of the online replay buffer."""
    warmup_steps: int = 0
    """Transitions collected with uniform random actions before learning starts (not with logged data)."""

    def __post_init__(self) -> None:
        if self.batch_size < 1 or self.update_every < 1 or self.buffer_size < 1 or self.warmup_steps < 0:
            raise ConfigError("replay: batch_size, update_every and buffer_size must be >= 1, warmup_steps >= 0")
        if self.utd_ratio <= 0:
            raise ConfigError(f"replay.utd_ratio must be positive, got {self.utd_ratio}")
        if not 0.0 <= self.offline_fraction <= 1.0:
            raise ConfigError(f"replay.offline_fraction must be in [0, 1], got {self.offline_fraction}")


@dataclass(frozen=True)
class ActorConfig:
    """The actor of an off-policy learner trained from scratch, and its optimizer."""

    hidden: list[int] = field(default_factory=lambda: [256, 128, 64])
    """Hidden widths of a fresh actor (ELU MLP, as PPO's, so either exports the same bundle; a bundle brings its
    own)."""
    init_std: float = 0.3
    """Initial standard deviation of a fresh Gaussian actor (action units)."""
    learning_rate: float = 3e-4
    """Adam learning rate of the actor."""

    def __post_init__(self) -> None:
        if self.learning_rate <= 0:
            raise ConfigError(f"actor.learning_rate must be positive, got {self.learning_rate}")
        check_init_std(self.init_std, "actor.init_std")

    def new_policy(self, obs_dim: int, act_dim: int) -> Policy:
        return Policy(obs_dim, act_dim, self.hidden, init_std=self.init_std)


@dataclass(frozen=True)
class CriticConfig:
    """The temporal-difference side of SAC, IQL and TD3+BC."""

    hidden: list[int] = field(default_factory=lambda: [256, 256])
    """Hidden widths of each Q (and V) network (ReLU MLPs on the normalized observation and, for Q, the
    action)."""
    learning_rate: float = 3e-4
    """Adam learning rate of the critics."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    reward_scale: float = 1.0
    """Multiplier on rewards in the critic targets: brings small per-step rewards (locomotion terms are weighted by
    the policy period) to order one, where entropy temperatures, advantage weights and lambda = alpha / mean|Q|
    behave as in the papers (fine-tuning sets 1 / std of the logged per-step rewards unless given)."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 < self.tau <= 1.0:
            raise ConfigError("critic: gamma must be in [0, 1] and tau in (0, 1]")
        if self.learning_rate <= 0 or self.reward_scale <= 0:
            raise ConfigError("critic: learning_rate and reward_scale must be positive")

    def target(self, batch: Batch, next_value: torch.Tensor) -> torch.Tensor:
        """r * reward_scale + gamma * V(s') where the episode did not terminate (truncations bootstrap)."""
        return self.reward_scale * batch.reward + self.gamma * (1.0 - batch.terminated) * next_value


class ReplayFeed:
    """The collection side of an off-policy learner: records `act` / `process_env_step` pairs as transitions in the
    online buffer, counts them, and samples update batches (RLPD mixing with `setup.offline`)."""

    def __init__(self, policy: Policy, cfg: ReplayConfig, setup: LearnerSetup) -> None:
        self.policy, self.cfg, self.setup = policy, cfg, setup
        self.offline = setup.offline
        self.online = ReplayBuffer(cfg.buffer_size, policy.obs_dim, policy.act_dim)
        self.rng = np.random.default_rng(setup.seed)
        self.collected = 0
        self.pending = 0
        self.steps_taken = 0
        """Gradient steps taken (TD3+BC's delayed actor counts them)."""
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    @property
    def warming_up(self) -> bool:
        """Still collecting uniform random actions and not learning (never with logged data)."""
        has_logs = self.offline is not None and len(self.offline) > 0
        return not has_logs and self.collected < self.cfg.warmup_steps

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Sampled actions (uniform in the clip during warm-up), recorded with their observations."""
        obs = np.asarray(obs, np.float32)
        if self.warming_up:
            clip = self.setup.action_clip
            actions = self.rng.uniform(-clip, clip, size=(obs.shape[0], self.policy.act_dim)).astype(np.float32)
        else:
            actions = self.policy.act(obs, deterministic=False).astype(np.float32)
        self._obs, self._actions = obs.copy(), actions
        return actions

    def process_env_step(self, next_obs: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                         truncated: np.ndarray, info: dict[str, Any]) -> None:
        if self._obs is None or self._actions is None:
            raise RuntimeError("process_env_step() before act()")
        batch = step_transitions(self._obs, self._actions, next_obs, rewards, terminated, truncated, info,
                                 self.setup.action_clip)
        self.online.add(batch)
        self.collected += len(batch)
        self.pending += len(batch)
        self._obs = self._actions = None

    def take_steps(self) -> int:
        """Gradient steps the next update owes: round(utd_ratio * new transitions), at least one (offline: one)."""
        n = max(1, int(round(self.cfg.utd_ratio * self.pending)))
        self.pending = 0
        return n

    def sample(self) -> Batch:
        """The next step's batch (counted in steps_taken)."""
        self.steps_taken += 1
        return sample_symmetric(self.offline, self.online, self.cfg.batch_size, self.rng,
                                self.cfg.offline_fraction).torch()

    def state_dict(self) -> dict[str, Any]:
        """Counters only: the replay buffer is not checkpointed (a resumed run refills it)."""
        return {"collected": self.collected, "steps_taken": self.steps_taken}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.collected = int(state["collected"])
        self.steps_taken = int(state["steps_taken"])


class _Stateful(Protocol):
    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


class ReplayLearner(ABC):
    """The learner protocol for an algorithm defined by its gradient step on a batch: `update()` takes the steps
    the feed owes (one per collected transition times replay.utd_ratio; one when learning from logged data only),
    nothing while warming up. Checkpoints hold the named `parts()` and the feed's counters."""

    def __init__(self, policy: Policy, replay: ReplayConfig, setup: LearnerSetup) -> None:
        self.policy = policy
        self.action_clip = setup.action_clip
        self.feed = ReplayFeed(policy, replay, setup)

    @property
    def rollout_steps(self) -> int:
        return self.feed.cfg.update_every

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Sampled actions for raw observations (N, obs_dim); uniform random during warm-up."""
        return self.feed.act(obs)

    def process_env_step(self, next_obs: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                         truncated: np.ndarray, info: dict[str, Any]) -> None:
        """Store the transitions of the last `act`: applied actions, real final observations at episode ends."""
        self.feed.process_env_step(next_obs, rewards, terminated, truncated, info)

    def update(self) -> dict[str, float]:
        if self.feed.warming_up:
            return {}
        out: dict[str, float] = {}
        for _ in range(self.feed.take_steps()):
            out = self.step(self.feed.sample())
        return out

    @abstractmethod
    def step(self, batch: Batch) -> dict[str, float]:
        """One gradient step of the algorithm on `batch`; returns its losses."""

    @abstractmethod
    def parts(self) -> dict[str, _Stateful]:
        """Networks and optimizers by name (what a checkpoint holds besides the feed's counters)."""

    def state_dict(self) -> dict[str, Any]:
        return {**{name: part.state_dict() for name, part in self.parts().items()}, "feed": self.feed.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name, part in self.parts().items():
            part.load_state_dict(state[name])
        self.feed.load_state_dict(state["feed"])
