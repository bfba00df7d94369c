"""Soft Actor-Critic with a high update-to-data (UTD) option in the spirit of DroQ (Hiraoka et al. 2022: dropout +
LayerNorm Q-functions at UTD 20, the learner behind "A Walk in the Park") and RLPD's symmetric sampling of logged and
fresh data (Ball et al. 2023) for offline-to-online fine-tuning:

    sac = SAC(policy, SACConfig(utd_ratio=4, droq=True), offline=ReplayBuffer.from_transitions(logged))
    actions = sac.act(obs)                                   # sampled, records obs
    obs, rew, terminated, truncated, info = env.step(actions)
    sac.process_env_step(obs, rew, terminated, truncated, info)
    losses = sac.update()                                    # utd_ratio critic updates per new transition

The policy is the PPO actor (Gaussian, state-independent std, unbounded mean); the environment/contract clips the
action, and the critics see the clipped, safety-filtered action the robot executed (`info["applied_action"]`).
Time-limit truncations bootstrap from the real final observation (`info["final_obs"]`).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robot_rl.errors import ConfigError
from robot_rl.offline.buffer import Batch, ReplayBuffer, sample_symmetric, step_transitions
from robot_rl.offline.policy import Critic, Policy, soft_update


@dataclass(frozen=True)
class SACConfig:
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target critics."""
    batch_size: int = 256
    """Transitions per gradient step (split between logged and online data, see offline_fraction)."""
    utd_ratio: float = 1.0
    """Critic updates per collected transition (DroQ uses 20; 1 is plain SAC)."""
    droq: bool = False
    """Dropout + LayerNorm critics (DroQ); recommended with utd_ratio > 1."""
    dropout: float = 0.01
    """Dropout rate of the DroQ critics."""
    num_q: int = 2
    """Critics in the ensemble (min over all of them for the target)."""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 3e-4
    init_alpha: float = 0.1
    """Initial entropy temperature."""
    target_entropy: float | None = None
    """Entropy target per action; None means -act_dim."""
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])
    offline_fraction: float = 0.5
    """Share of each batch drawn from the logged data when an offline buffer is given (RLPD: 0.5)."""
    buffer_size: int = 1_000_000
    """Capacity of the online replay buffer."""
    warmup_steps: int = 1000
    """Transitions collected with uniform random actions before learning (0 when fine-tuning a bundle)."""
    action_clip: float = 1.0
    """The contract's action clip: sampled actions are clipped to it before the critics see them."""
    mean_penalty: float = 1.0
    """Weight of a penalty on policy means outside [-action_clip, action_clip]."""
    reward_scale: float = 1.0
    """Multiplier on rewards in the critic targets: brings small per-step rewards (locomotion terms are weighted
    by the policy period) to the scale where the entropy temperature is meaningful."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 < self.tau <= 1.0:
            raise ConfigError("sac: gamma must be in [0, 1] and tau in (0, 1]")
        if self.reward_scale <= 0:
            raise ConfigError("sac.reward_scale must be positive")
        if self.utd_ratio <= 0 or self.batch_size < 1 or self.num_q < 2:
            raise ConfigError("sac: utd_ratio > 0, batch_size >= 1 and num_q >= 2 are required")
        if not 0.0 <= self.offline_fraction <= 1.0:
            raise ConfigError("sac.offline_fraction must be in [0, 1]")


class SAC:
    """SAC learner with its online replay buffer and an optional buffer of logged data."""

    def __init__(self, policy: Policy, cfg: SACConfig | None = None, offline: ReplayBuffer | None = None,
                 seed: int = 0) -> None:
        self.cfg = c = cfg or SACConfig()
        self.policy = policy
        self.critic = Critic(policy.obs_dim, policy.act_dim, c.critic_hidden, c.num_q, layer_norm=c.droq,
                             dropout=c.dropout if c.droq else 0.0)
        self.critic_target = copy.deepcopy(self.critic)
        self.log_alpha = torch.tensor(math.log(c.init_alpha), requires_grad=True)
        self.target_entropy = -float(policy.act_dim) if c.target_entropy is None else c.target_entropy
        self.actor_opt = torch.optim.Adam(policy.parameters(), lr=c.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=c.alpha_lr)
        self.offline = offline
        self.online = ReplayBuffer(c.buffer_size, policy.obs_dim, policy.act_dim)
        self.rng = np.random.default_rng(seed)
        self.collected = 0
        self._pending = 0
        self._obs: np.ndarray | None = None
        self._actions: np.ndarray | None = None

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    # ---- acting --------------------------------------------------------------------------------------------
    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Sampled actions for raw observations (N, obs_dim); uniform random during warm-up."""
        obs = np.asarray(obs, np.float32)
        if self.collected < self.cfg.warmup_steps:
            actions = self.rng.uniform(-self.cfg.action_clip, self.cfg.action_clip,
                                       size=(obs.shape[0], self.policy.act_dim)).astype(np.float32)
        else:
            actions = self.policy.act(obs, deterministic=False).astype(np.float32)
        self._obs, self._actions = obs.copy(), actions
        return actions

    def process_env_step(self, next_obs: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                         truncated: np.ndarray, info: dict[str, Any]) -> None:
        """Store the transitions of the last `act`: applied actions, real final observations at episode ends."""
        if self._obs is None or self._actions is None:
            raise RuntimeError("process_env_step() before act()")
        batch = step_transitions(self._obs, self._actions, next_obs, rewards, terminated, truncated, info,
                                 self.cfg.action_clip)
        self.online.add(batch)
        n = len(batch)
        self.collected += n
        self._pending += n
        self._obs = self._actions = None

    # ---- learning ------------------------------------------------------------------------------------------
    def update(self) -> dict[str, float]:
        """round(utd_ratio * new transitions) critic updates and one actor/temperature update."""
        if self.collected < self.cfg.warmup_steps:
            return {}
        n = max(1, int(round(self.cfg.utd_ratio * self._pending)))
        self._pending = 0
        return self.update_steps(n)

    def sample(self) -> Batch:
        return sample_symmetric(self.offline, self.online, self.cfg.batch_size, self.rng,
                                self.cfg.offline_fraction).torch()

    def update_steps(self, critic_steps: int, actor: bool = True) -> dict[str, float]:
        """`critic_steps` critic updates on fresh batches, then (optionally) one actor and temperature update."""
        out: dict[str, float] = {}
        batch = None
        for _ in range(critic_steps):
            batch = self.sample()
            out = self.update_critic(batch)
        if actor and batch is not None:
            out.update(self.update_actor(batch))
        return out

    def update_critic(self, batch: Batch) -> dict[str, float]:
        c = self.cfg
        obs_n = self.policy.normalize(batch.obs)
        next_n = self.policy.normalize(batch.next_obs)
        with torch.no_grad():
            dist = self.policy.distribution(next_n)
            u = dist.sample()
            logp = dist.log_prob(u).sum(-1)
            next_q = self.critic_target(next_n, u.clamp(-c.action_clip, c.action_clip)).min(0).values
            target = c.reward_scale * batch.reward + c.gamma * (1.0 - batch.terminated) * (next_q - self.alpha * logp)
        q = self.critic(obs_n, batch.action)
        loss = F.mse_loss(q, target.expand_as(q))
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, c.tau)
        return {"loss/critic": float(loss.detach()), "q_mean": float(q.detach().mean())}

    def update_actor(self, batch: Batch) -> dict[str, float]:
        c = self.cfg
        obs_n = self.policy.normalize(batch.obs)
        dist = self.policy.distribution(obs_n)
        u = dist.rsample()
        logp = dist.log_prob(u).sum(-1)
        q = self.critic(obs_n, u.clamp(-c.action_clip, c.action_clip)).mean(0)
        excess = F.relu(dist.mean.abs() - c.action_clip).square().sum(-1)
        loss = (self.alpha.detach() * logp - q + c.mean_penalty * excess).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        with torch.no_grad():
            self.policy.log_std.clamp_(-5.0, 1.0)
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        return {"loss/actor": float(loss.detach()), "alpha": float(self.alpha.detach()),
                "entropy": float(-logp.detach().mean())}

