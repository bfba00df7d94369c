"""TD3+BC (Fujimoto & Gu 2021): TD3 with a behaviour-cloning term, lambda = alpha / mean|Q|.

    learner = TD3BC(policy, TD3BCConfig(), LearnerSetup(offline=ReplayBuffer.from_transitions(data)))
    losses = learner.update()

The actor is the Gaussian actor of every learner (its mean is TD3's deterministic policy, unbounded, the contract
clips to [-clip, clip]); actions fed to the critics are clipped the same way, so the critic sees what the robot
would execute. It follows the learner protocol (robot_rl.learner): continued online, it explores with the actor's
Gaussian and learns from RLPD batches of logged and fresh data.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F

from robot_rl.errors import ConfigError
from robot_rl.learner import LearnerSetup
from robot_rl.networks import Critic, Policy, soft_update
from robot_rl.offline.buffer import Batch
from robot_rl.offline.offpolicy import ActorConfig, CriticConfig, ReplayConfig, ReplayLearner


@dataclass(frozen=True)
class TD3BCConfig:
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    """Batches (and collection when continued online)."""
    actor: ActorConfig = field(default_factory=ActorConfig)
    """Fresh actor and its learning rate."""
    critic: CriticConfig = field(default_factory=CriticConfig)
    """Q-functions and their targets. With rewards of a few hundredths per step the targets start near zero and grow
    for tens of thousands of updates, and lambda = alpha / mean|Q| shrinks with them: scale the rewards
    (critic.reward_scale)."""
    alpha: float = 2.5
    """Weight of the Q term relative to BC (the paper's alpha; lambda = alpha / mean|Q|)."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise."""
    noise_clip: float = 0.5
    """Clip of the target smoothing noise."""
    policy_delay: int = 2
    """Critic updates per actor update."""
    critic_warmup: int = 0
    """Critic-only updates before the actor moves: the actor then follows the gradient of a fitted Q of the start
    policy, not of a random network."""

    def __post_init__(self) -> None:
        if self.policy_delay < 1 or self.alpha < 0 or self.critic_warmup < 0:
            raise ConfigError("td3bc: policy_delay >= 1, alpha >= 0 and critic_warmup >= 0 are required")

class TD3BC(ReplayLearner):
    """TD3+BC on batches from its replay feed (logged data, and fresh data when collecting)."""

    def __init__(self, policy: Policy, cfg: TD3BCConfig, setup: LearnerSetup) -> None:
        super().__init__(policy, cfg.replay, setup)
        self.cfg = c = cfg
        self.policy_target = copy.deepcopy(policy)
        self.critic = Critic(policy.obs_dim, policy.act_dim, c.critic.hidden)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(policy.net.parameters(), lr=c.actor.learning_rate)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic.learning_rate)

    def parts(self) -> dict[str, Any]:
        return {"policy": self.policy, "policy_target": self.policy_target, "critic": self.critic,
                "critic_target": self.critic_target, "actor_opt": self.actor_opt, "critic_opt": self.critic_opt}

    def step(self, batch: Batch) -> dict[str, float]:
        """One critic step on `batch`, and every policy_delay-th step (after the warm-up) one actor step."""
        c, clip = self.cfg, self.action_clip
        obs_n = self.policy.normalize(batch.obs)
        next_n = self.policy.normalize(batch.next_obs)
        with torch.no_grad():
            noise = (torch.randn_like(batch.action) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            next_a = (self.policy_target.mean(next_n) + noise).clamp(-clip, clip)
            target = c.critic.target(batch, self.critic_target(next_n, next_a).min(0).values)
        q = self.critic(obs_n, batch.action)
        critic_loss = F.mse_loss(q, target.expand_as(q))
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        out = {"loss/critic": float(critic_loss.detach()), "q_mean": float(q.detach().mean())}
        updates = self.feed.steps_taken
        if updates > c.critic_warmup and updates % c.policy_delay == 0:
            pi = self.policy.mean(obs_n)
            q_pi = self.critic(obs_n, pi.clamp(-clip, clip))[0]
            lam = c.alpha / q_pi.abs().mean().detach().clamp_min(1e-6)
            bc = F.mse_loss(pi, batch.action)
            actor_loss = -lam * q_pi.mean() + bc
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            soft_update(self.policy_target, self.policy, c.critic.tau)
            out.update({"loss/actor": float(actor_loss.detach()), "loss/bc": float(bc.detach())})
        if updates % c.policy_delay == 0:
            soft_update(self.critic_target, self.critic, c.critic.tau)
        return out
