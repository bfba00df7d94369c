"""TD3+BC (Fujimoto & Gu 2021): TD3 with a behaviour-cloning term, lambda = alpha / mean|Q|.

    learner = TD3BC(policy, TD3BCConfig())
    losses = learner.update(batch)

The actor is the PPO actor (unbounded mean, the contract clips to [-clip, clip]); actions fed to the critics are
clipped the same way, so the critic sees what the robot would execute.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from robot_rl.errors import ConfigError
from robot_rl.offline.buffer import Batch
from robot_rl.offline.policy import Critic, Policy, soft_update


@dataclass(frozen=True)
class TD3BCConfig:
    alpha: float = 2.5
    """Weight of the Q term relative to BC (the paper's alpha; lambda = alpha / mean|Q|)."""
    gamma: float = 0.99
    """Discount factor."""
    tau: float = 0.005
    """Polyak rate of the target networks."""
    policy_noise: float = 0.2
    """Std of the target policy smoothing noise."""
    noise_clip: float = 0.5
    """Clip of the target smoothing noise."""
    policy_delay: int = 2
    """Critic updates per actor update."""
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    critic_hidden: list[int] = field(default_factory=lambda: [256, 256])
    action_clip: float = 1.0
    """Actions are clipped to [-action_clip, action_clip] (the contract's clip)."""
    reward_scale: float = 1.0
    """Multiplies the rewards. With rewards of a few hundredths per step the critic's targets start near zero and
    grow for tens of thousands of updates, and lambda = alpha / mean|Q| shrinks with them: the actor first follows
    an unfitted critic, then drifts back to the logged actions (robot_rl.offline.finetune sets 1 / std of the
    logged per-step rewards unless given)."""
    critic_warmup: int = 0
    """Critic-only updates before the actor moves: the actor then follows the gradient of a fitted Q of the start
    policy, not of a random network."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.gamma <= 1.0 or not 0.0 < self.tau <= 1.0:
            raise ConfigError("td3bc: gamma must be in [0, 1] and tau in (0, 1]")
        if self.policy_delay < 1 or self.alpha < 0 or self.reward_scale <= 0 or self.critic_warmup < 0:
            raise ConfigError("td3bc: policy_delay >= 1, alpha >= 0, reward_scale > 0 and critic_warmup >= 0 are "
                              "required")


class TD3BC:
    def __init__(self, policy: Policy, cfg: TD3BCConfig | None = None) -> None:
        self.cfg = c = cfg or TD3BCConfig()
        self.policy = policy
        self.policy_target = copy.deepcopy(policy)
        self.critic = Critic(policy.obs_dim, policy.act_dim, c.critic_hidden)
        self.critic_target = copy.deepcopy(self.critic)
        self.actor_opt = torch.optim.Adam(policy.net.parameters(), lr=c.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic_lr)
        self.updates = 0

    def update(self, batch: Batch) -> dict[str, float]:
        c = self.cfg
        obs_n = self.policy.normalize(batch.obs)
        next_n = self.policy.normalize(batch.next_obs)
        with torch.no_grad():
            noise = (torch.randn_like(batch.action) * c.policy_noise).clamp(-c.noise_clip, c.noise_clip)
            next_a = (self.policy_target.mean(next_n) + noise).clamp(-c.action_clip, c.action_clip)
            target_q = self.critic_target(next_n, next_a).min(0).values
            target = c.reward_scale * batch.reward + c.gamma * (1.0 - batch.terminated) * target_q
        q = self.critic(obs_n, batch.action)
        critic_loss = F.mse_loss(q, target.expand_as(q))
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        out = {"loss/critic": float(critic_loss.detach()), "q_mean": float(q.detach().mean())}
        self.updates += 1
        if self.updates > c.critic_warmup and self.updates % c.policy_delay == 0:
            pi = self.policy.mean(obs_n)
            q_pi = self.critic(obs_n, pi.clamp(-c.action_clip, c.action_clip))[0]
            lam = c.alpha / q_pi.abs().mean().detach().clamp_min(1e-6)
            bc = F.mse_loss(pi, batch.action)
            actor_loss = -lam * q_pi.mean() + bc
            self.actor_opt.zero_grad(set_to_none=True)
            actor_loss.backward()
            self.actor_opt.step()
            soft_update(self.policy_target, self.policy, c.tau)
            out.update({"loss/actor": float(actor_loss.detach()), "loss/bc": float(bc.detach())})
        if self.updates % c.policy_delay == 0:
            soft_update(self.critic_target, self.critic, c.tau)
        return out
