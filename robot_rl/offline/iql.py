"""Implicit Q-Learning (Kostrikov et al. 2022): expectile regression of V on Q, Q on r + gamma V(s'), and
advantage-weighted regression of the policy; it never queries Q on actions outside the data, which also makes it
the stable choice to continue online (the learner protocol, robot_rl.learner; RLPD batches of logged and fresh
data).

    learner = IQL(policy, IQLConfig(value_loss="huber"), LearnerSetup(offline=ReplayBuffer.from_transitions(data)))
    losses = learner.update()

`value_loss="huber"` replaces the squared expectile loss with an expectile-weighted Huber loss (and the Q loss by a
Huber loss), the robust variant RIQL (Yang et al. 2023) found to hold up on corrupted logs.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
import torch.nn.functional as F

from robot_rl.errors import ConfigError
from robot_rl.learner import LearnerSetup
from robot_rl.networks import Critic, Policy, ValueNet, soft_update
from robot_rl.offline.buffer import Batch
from robot_rl.offline.offpolicy import ActorConfig, CriticConfig, ReplayConfig, ReplayLearner


@dataclass(frozen=True)
class IQLConfig:
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    """Batches (and collection when continued online)."""
    actor: ActorConfig = field(default_factory=ActorConfig)
    """Fresh actor and its learning rate."""
    critic: CriticConfig = field(default_factory=CriticConfig)
    """Q and V networks and their targets; critic.learning_rate is V's too, and critic.reward_scale brings the
    advantages to the order one that the advantage weights exp(temperature * A) assume."""
    expectile: float = 0.7
    """tau of the expectile regression of V on Q (0.5 = mean, -> 1 = max)."""
    temperature: float = 3.0
    """beta of the advantage weights exp(beta * A)."""
    max_weight: float = 100.0
    """Clip of the advantage weights."""
    value_loss: Literal["mse", "huber"] = "mse"
    """Squared (paper) or Huber loss for V and Q (robust to corrupted rewards and outliers)."""
    huber_delta: float = 1.0
    """Transition point of the Huber loss."""
    clip_logged_actions: bool = True
    """Clip logged actions to the action clip for the policy's likelihood (off: learn from the policy's own raw
    outputs, beyond the clip too)."""
    anchor: float = 0.0
    """Weight of a squared-error term that keeps the actor's mean close to the start actor's on the logged states
    (a KL regularizer to the policy being fine-tuned, for equal stds): 0 lets the advantage-weighted regression
    move the actor anywhere the data supports; > 0 moves it only where the advantages pull harder."""

    def __post_init__(self) -> None:
        if not 0.0 < self.expectile < 1.0:
            raise ConfigError(f"iql.expectile must be in (0, 1), got {self.expectile}")
        if self.temperature < 0 or self.max_weight <= 0 or self.huber_delta <= 0 or self.anchor < 0:
            raise ConfigError("iql: temperature >= 0, max_weight > 0, huber_delta > 0 and anchor >= 0 are required")

class IQL(ReplayLearner):
    """IQL on batches from its replay feed (logged data, and fresh data when collecting)."""

    def __init__(self, policy: Policy, cfg: IQLConfig, setup: LearnerSetup) -> None:
        super().__init__(policy, cfg.replay, setup)
        self.cfg = c = cfg
        self.likelihood_clip = setup.action_clip if c.clip_logged_actions else float("inf")
        self.critic = Critic(policy.obs_dim, policy.act_dim, c.critic.hidden)
        self.critic_target = copy.deepcopy(self.critic)
        self.value = ValueNet(policy.obs_dim, c.critic.hidden)
        self.start = copy.deepcopy(policy).requires_grad_(False) if c.anchor > 0 else None
        self.actor_opt = torch.optim.Adam(policy.parameters(), lr=c.actor.learning_rate)
        self.critic_opt = torch.optim.Adam(self.critic.parameters(), lr=c.critic.learning_rate)
        self.value_opt = torch.optim.Adam(self.value.parameters(), lr=c.critic.learning_rate)

    def parts(self) -> dict[str, Any]:
        return {"policy": self.policy, "critic": self.critic, "critic_target": self.critic_target,
                "value": self.value, "actor_opt": self.actor_opt, "critic_opt": self.critic_opt,
                "value_opt": self.value_opt}

    def _loss(self, diff: torch.Tensor) -> torch.Tensor:
        """Elementwise regression loss of a residual (squared or Huber)."""
        if self.cfg.value_loss == "huber":
            return F.huber_loss(diff, torch.zeros_like(diff), reduction="none", delta=self.cfg.huber_delta)
        return diff.square()

    def step(self, batch: Batch) -> dict[str, float]:
        """One V, Q and policy step on `batch`."""
        c = self.cfg
        obs_n = self.policy.normalize(batch.obs)
        next_n = self.policy.normalize(batch.next_obs)
        action = batch.action.clamp(-self.likelihood_clip, self.likelihood_clip)
        # V: expectile of the target Q
        with torch.no_grad():
            q_t = self.critic_target(obs_n, action).min(0).values
        v = self.value(obs_n)
        diff = q_t - v
        weight = torch.where(diff < 0, 1.0 - c.expectile, c.expectile)
        value_loss = (weight * self._loss(diff)).mean()
        self.value_opt.zero_grad(set_to_none=True)
        value_loss.backward()
        self.value_opt.step()
        # Q: one-step backup through V(s')
        with torch.no_grad():
            target = c.critic.target(batch, self.value(next_n))
        q = self.critic(obs_n, action)
        critic_loss = self._loss(q - target).mean()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()
        soft_update(self.critic_target, self.critic, c.critic.tau)
        # policy: advantage-weighted log-likelihood of the logged action
        with torch.no_grad():
            adv = q_t - v.detach()
            w = torch.exp(c.temperature * adv).clamp(max=c.max_weight)
        log_prob = self.policy.distribution(obs_n).log_prob(action).sum(-1)
        actor_loss = -(w * log_prob).mean()
        anchor = torch.zeros(())
        if self.start is not None:
            with torch.no_grad():
                mean0 = self.start.mean(obs_n)
            anchor = (self.policy.mean(obs_n) - mean0).square().sum(-1).mean()
            actor_loss = actor_loss + c.anchor * anchor
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()
        self.policy.clamp_log_std_()
        return {"loss/value": float(value_loss.detach()), "loss/critic": float(critic_loss.detach()),
                "loss/actor": float(actor_loss.detach()), "q_mean": float(q.detach().mean()),
                "adv_mean": float(adv.mean()), "weight_mean": float(w.mean()), "anchor": float(anchor.detach())}
