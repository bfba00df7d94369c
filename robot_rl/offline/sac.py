"""Soft Actor-Critic with a high update-to-data (UTD) option in the spirit of DroQ (Hiraoka et al. 2022: dropout +
LayerNorm Q-functions at UTD 20, the learner behind "A Walk in the Park") and RLPD's symmetric sampling of logged and
fresh data (Ball et al. 2023) for offline-to-online fine-tuning. It follows the learner protocol
(robot_rl.learner):

    sac = SAC(policy, SACConfig(droq=True), LearnerSetup(num_envs=8, offline=ReplayBuffer.from_transitions(logged)))
    actions = sac.act(obs)                                   # sampled, recorded
    obs, rew, terminated, truncated, info = env.step(actions)
    sac.process_env_step(obs, rew, terminated, truncated, info)
    losses = sac.update()                                    # utd_ratio critic updates per new transition

The policy is the Gaussian actor (state-independent std, unbounded mean); the environment/contract clips the action,
and the critics see the clipped, safety-filtered action the robot executed (`info["applied_action"]`). Time-limit
truncations bootstrap from the real final observation (`info["final_obs"]`). With logged data and nothing collected,
`update()` is one critic and one actor step on a logged batch (offline SAC).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.errors import ConfigError
from robot_rl.learner import LearnerSetup
from robot_rl.networks import Critic, Policy, soft_update
from robot_rl.offline.buffer import Batch
from robot_rl.offline.offpolicy import ActorConfig, CriticConfig, ReplayConfig, ReplayLearner


@dataclass(frozen=True)
class SACConfig:
    replay: ReplayConfig = field(default_factory=lambda: ReplayConfig(warmup_steps=1000))
    """Collection and sampling (warm-up: uniform random actions before learning from scratch)."""
    actor: ActorConfig = field(default_factory=ActorConfig)
    """Fresh actor and its learning rate."""
    critic: CriticConfig = field(default_factory=CriticConfig)
    """Q-functions and their targets."""
    droq: bool = False
    """Dropout + LayerNorm critics (DroQ); recommended with replay.utd_ratio > 1."""
    dropout: float = 0.01
    """Dropout rate of the DroQ critics."""
    num_q: int = 2
    """Critics in the ensemble (min over all of them for the target)."""
    alpha_lr: float = 3e-4
    """Adam learning rate of the entropy temperature."""
    init_alpha: float = 0.1
    """Initial entropy temperature."""
    target_entropy: float | None = None
    """Entropy target per action; None means -act_dim."""
    mean_penalty: float = 1.0
    """Weight of a penalty on policy means outside the action clip (the mean is unbounded, the robot's action not)."""

    def __post_init__(self) -> None:
        if self.num_q < 2:
            raise ConfigError(f"sac.num_q must be >= 2, got {self.num_q}")
        if self.init_alpha <= 0 or self.alpha_lr <= 0 or not 0.0 <= self.dropout < 1.0:
            raise ConfigError("sac: init_alpha and alpha_lr must be positive, dropout in [0, 1)")

class _Temperature(nn.Module):
    """The entropy temperature alpha = exp(log_alpha), learned."""

    def __init__(self, init_alpha: float) -> None:
        super().__init__()
        self.log_alpha = nn.Parameter(torch.tensor(math.log(init_alpha)))


class SAC(ReplayLearner):
    """SAC learner with its online replay buffer and optional logged data (`setup.offline`)."""

    def __init__(self, policy: Policy, cfg: SACConfig, setup: LearnerSetup) -> None:
        super().__init__(policy, cfg.replay, setup)
        self.cfg = c = cfg
        self.critic = Critic(policy.obs_dim, policy.act_dim, c.critic.hidden, c.num_q, layer_norm=c.droq,
                             dropout=c.dropout if c.droq else 0.0)
        self.critic_target = copy.deepcopy(self.critic)
        self.temperature = _Temperature(c.init_alpha)
        self.log_alpha = self.temperature.log_alpha
        self.target_entropy = -float(policy.act_dim) if c.target_entropy is None else c.target_entropy
        self.actor_opt = torch.optim.Adam(policy.parameters(), lr=c.actor.learning_rate)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic.learning_rate)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=c.alpha_lr)

    @property
    def alpha(self) -> torch.Tensor:
        return self.log_alpha.exp()

    def parts(self) -> dict[str, Any]:
        return {"policy": self.policy, "critic": self.critic, "critic_target": self.critic_target,
                "temperature": self.temperature, "actor_opt": self.actor_opt, "critic_opt": self.critic_opt,
                "alpha_opt": self.alpha_opt}

    def update(self) -> dict[str, float]:
        """round(utd_ratio * new transitions) critic updates and one actor/temperature update."""
        if self.feed.warming_up:
            return {}
        return self.update_steps(self.feed.take_steps())

    def update_steps(self, critic_steps: int, actor: bool = True) -> dict[str, float]:
        """`critic_steps` critic updates on fresh batches, then (optionally) one actor and temperature update;
        `actor=False` fits the critics of a fixed actor (before fine-tuning a bundle online)."""
        out: dict[str, float] = {}
        batch = None
        for _ in range(critic_steps):
            batch = self.feed.sample()
            out = self.step(batch)
        if actor and batch is not None:
            out.update(self.update_actor(batch))
        return out

    def step(self, batch: Batch) -> dict[str, float]:
        """One critic step on `batch`."""
        clip = self.action_clip
        obs_n = self.policy.normalize(batch.obs)
        next_n = self.policy.normalize(batch.next_obs)
        with torch.no_grad():
            dist = self.policy.distribution(next_n)
            u = dist.sample()
            logp = dist.log_prob(u).sum(-1)
            next_q = self.critic_target(next_n, u.clamp(-clip, clip)).min(0).values
            target = self.cfg.critic.target(batch, next_q - self.alpha * logp)
        q = self.critic(obs_n, batch.action)
        loss = F.mse_loss(q, target.expand_as(q))
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, self.cfg.critic.tau)
        return {"loss/critic": float(loss.detach()), "q_mean": float(q.detach().mean())}

    def update_actor(self, batch: Batch) -> dict[str, float]:
        clip = self.action_clip
        obs_n = self.policy.normalize(batch.obs)
        dist = self.policy.distribution(obs_n)
        u = dist.rsample()
        logp = dist.log_prob(u).sum(-1)
        q = self.critic(obs_n, u.clamp(-clip, clip)).mean(0)
        excess = F.relu(dist.mean.abs() - clip).square().sum(-1)
        loss = (self.alpha.detach() * logp - q + self.cfg.mean_penalty * excess).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.actor_opt.step()
        self.policy.clamp_log_std_()
        alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
        self.alpha_opt.zero_grad(set_to_none=True)
        alpha_loss.backward()
        self.alpha_opt.step()
        return {"loss/actor": float(loss.detach()), "alpha": float(self.alpha.detach()),
                "entropy": float(-logp.detach().mean())}
