"""Proximal Policy Optimization for CPU training, in the rsl_rl shape:

    actions = ppo.act(obs)                       # samples, records obs/value/log-prob
    obs, rew, terminated, truncated, info = env.step(actions)
    ppo.process_env_step(rew, terminated, truncated, info)
    ...                                          # num_steps times
    ppo.compute_returns(obs)                     # GAE
    losses = ppo.update()                        # dict of losses and statistics

Running observation normalization, clipped surrogate with optional value clipping, entropy bonus, adaptive learning
rate on the KL divergence, and value bootstrapping on time-limit truncation from `info["final_obs"]`. When the
environment reports `info["applied_action"]` (the action after the safety chain) and `store_applied_action` is set,
the learner stores that action.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch

from robot_rl.errors import ConfigError
from robot_rl.networks import ActorCritic
from robot_rl.normalizer import RunningNormalizer


@dataclass(frozen=True)
class PPOConfig:
    num_steps: int = 24
    """Rollout length per environment and iteration."""
    num_epochs: int = 5
    """Passes over each rollout."""
    num_minibatches: int = 4
    """Minibatches per epoch."""
    gamma: float = 0.99
    """Discount factor."""
    lam: float = 0.95
    """GAE lambda."""
    clip_param: float = 0.2
    """Clip range of the probability ratio (and of the value change when clip_value)."""
    clip_value: bool = False
    """Clip the value-function update around the rollout values."""
    value_coef: float = 1.0
    """Weight of the value loss."""
    entropy_coef: float = 0.001
    """Weight of the entropy bonus (small: with CPU-sized batches a larger bonus keeps the noise from shrinking)."""
    learning_rate: float = 1e-3
    """Initial Adam learning rate."""
    schedule: Literal["adaptive", "fixed"] = "adaptive"
    """adaptive: scale the learning rate by 1.5 to keep the KL near desired_kl; fixed: constant."""
    desired_kl: float = 0.01
    """Target KL divergence per minibatch for the adaptive schedule."""
    min_lr: float = 1e-5
    max_lr: float = 3e-3
    """Upper bound of the adaptive learning rate (Adam on CPU-sized minibatches diverges near 1e-2)."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    init_noise_std: float = 0.6
    """Initial standard deviation of the Gaussian policy (in action units; the A1 scales actions by 0.25 rad)."""
    actor_hidden: list[int] = field(default_factory=lambda: [256, 128, 64])
    critic_hidden: list[int] = field(default_factory=lambda: [256, 128, 64])
    normalize_obs: bool = True
    """Running mean/std observation normalization (its statistics go into the bundle contract)."""
    normalize_advantage: bool = True
    store_applied_action: bool = False
    """Store info["applied_action"] (after the safety chain) instead of the sampled action where they differ. Off
    by default: where the chain clips hard, the stored actions sit several standard deviations from the policy
    mean and the mean runs away beyond the action clip. With the sampled action stored, the chain is part of the
    environment and the policy still observes the applied action as last_action (docs/safety.md, Training cost
    on the A1)."""

    def __post_init__(self) -> None:
        for name in ("num_steps", "num_epochs", "num_minibatches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ppo.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gamma", "lam"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"ppo.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("clip_param", "learning_rate", "desired_kl", "init_noise_std", "max_grad_norm"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ppo.{name} must be positive, got {getattr(self, name)}")


def compute_gae(rewards: torch.Tensor, values: torch.Tensor, dones: torch.Tensor, last_value: torch.Tensor,
                gamma: float, lam: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation over (T, N) tensors; `dones[t]` ends the episode after step t (rewards
    already include any truncation bootstrap). Returns (advantages, returns)."""
    steps = rewards.shape[0]
    advantages = torch.zeros_like(rewards)
    gae = torch.zeros_like(last_value)
    for t in reversed(range(steps)):
        next_value = last_value if t == steps - 1 else values[t + 1]
        not_done = 1.0 - dones[t]
        delta = rewards[t] + gamma * next_value * not_done - values[t]
        gae = delta + gamma * lam * not_done * gae
        advantages[t] = gae
    return advantages, advantages + values


class PPO:
    """PPO learner with its rollout storage, actor-critic, observation normalizer and optimizer."""

    def __init__(self, obs_dim: int, act_dim: int, num_envs: int, cfg: PPOConfig,
                 action_clip: float | None = None) -> None:
        self.cfg = cfg
        self.num_envs = num_envs
        self.action_clip = action_clip
        self.model = ActorCritic(obs_dim, act_dim, cfg.actor_hidden, cfg.critic_hidden, cfg.init_noise_std)
        self.normalizer = RunningNormalizer(obs_dim)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=cfg.learning_rate)
        self.learning_rate = cfg.learning_rate
        shape = (cfg.num_steps, num_envs)
        self.obs = torch.zeros(*shape, obs_dim)
        self.actions = torch.zeros(*shape, act_dim)
        self.mu = torch.zeros(*shape, act_dim)
        self.sigma = torch.zeros(*shape, act_dim)
        self.log_probs = torch.zeros(shape)
        self.values = torch.zeros(shape)
        self.rewards = torch.zeros(shape)
        self.dones = torch.zeros(shape)
        self.advantages = torch.zeros(shape)
        self.returns = torch.zeros(shape)
        self.step = 0
        self.skipped_steps = 0
        """Minibatch steps skipped because the loss was not finite (cumulative)."""
        self.applied_action_replaced = 0.0
        """Fraction of stored actions replaced by info["applied_action"] in the last rollout."""
        self._replaced = 0

    # ---- acting --------------------------------------------------------------------------------------------
    def normalize(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        if not self.cfg.normalize_obs:
            return obs
        if update:
            self.normalizer.update(obs)
        return self.normalizer(obs)

    @torch.no_grad()
    def act(self, obs: torch.Tensor) -> torch.Tensor:
        """Sample actions for raw observations (N, obs_dim) and record the transition's first half."""
        if self.step >= self.cfg.num_steps:
            raise RuntimeError("rollout storage is full: call compute_returns() and update()")
        obs = torch.nan_to_num(obs, nan=0.0, posinf=1e6, neginf=-1e6)
        obs_n = self.normalize(obs, update=True)
        dist = self.model.distribution(obs_n)
        actions = dist.sample()
        t = self.step
        self.obs[t] = obs_n
        self.actions[t] = actions
        self.mu[t] = dist.mean
        self.sigma[t] = dist.stddev
        self.log_probs[t] = dist.log_prob(actions).sum(-1)
        self.values[t] = self.model.value(obs_n)
        return actions

    @torch.no_grad()
    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        """Mean action for raw observations, without touching storage or statistics."""
        return self.model.act_deterministic(self.normalize(obs))

    @torch.no_grad()
    def process_env_step(self, rewards: np.ndarray | torch.Tensor, terminated: np.ndarray | torch.Tensor,
                         truncated: np.ndarray | torch.Tensor, info: dict[str, Any]) -> None:
        """Record the transition's second half; bootstrap the value of time-limit truncations."""
        t = self.step
        rew = torch.nan_to_num(torch.as_tensor(np.asarray(rewards), dtype=torch.float32).clone(), nan=0.0)
        term = torch.as_tensor(np.asarray(terminated), dtype=torch.bool)
        trunc = torch.as_tensor(np.asarray(truncated), dtype=torch.bool) & ~term
        if bool(trunc.any()):
            final = torch.as_tensor(np.asarray(info["final_obs"]), dtype=torch.float32)[trunc]
            final = torch.nan_to_num(final, nan=0.0, posinf=1e6, neginf=-1e6)
            rew[trunc] += self.cfg.gamma * self.model.value(self.normalize(final))
        applied = info.get("applied_action")
        if self.cfg.store_applied_action and applied is not None:
            self._store_applied(t, torch.as_tensor(np.asarray(applied), dtype=torch.float32))
        self.rewards[t] = rew
        self.dones[t] = (term | trunc).float()
        self.step += 1

    def _store_applied(self, t: int, applied: torch.Tensor) -> None:
        """Replace sampled actions that the safety chain changed (beyond the contract's own clip)."""
        sampled = self.actions[t]
        if self.action_clip is not None:
            sampled = sampled.clamp(-self.action_clip, self.action_clip)
        changed = (applied - sampled).abs().amax(-1) > 1e-5
        if not bool(changed.any()):
            return
        self._replaced += int(changed.sum())
        self.actions[t, changed] = applied[changed]
        dist = torch.distributions.Normal(self.mu[t, changed], self.sigma[t, changed])
        self.log_probs[t, changed] = dist.log_prob(applied[changed]).sum(-1)

    # ---- learning ------------------------------------------------------------------------------------------
    @torch.no_grad()
    def compute_returns(self, last_obs: torch.Tensor) -> None:
        """GAE over the full rollout, bootstrapping from the value of the observation after the last step."""
        if self.step != self.cfg.num_steps:
            raise RuntimeError(f"rollout has {self.step} of {self.cfg.num_steps} steps")
        last_value = self.model.value(self.normalize(last_obs))
        self.advantages, self.returns = compute_gae(self.rewards, self.values, self.dones, last_value,
                                                    self.cfg.gamma, self.cfg.lam)

    def update(self) -> dict[str, float]:
        """PPO epochs over the rollout; returns mean losses and statistics, and empties the storage."""
        cfg = self.cfg
        n = cfg.num_steps * self.num_envs
        obs = self.obs.reshape(n, -1)
        actions = self.actions.reshape(n, -1)
        old_mu, old_sigma = self.mu.reshape(n, -1), self.sigma.reshape(n, -1)
        old_log_probs, old_values = self.log_probs.reshape(n), self.values.reshape(n)
        returns, advantages = self.returns.reshape(n), self.advantages.reshape(n)
        if cfg.normalize_advantage:
            advantages = (advantages - advantages.mean()) / (advantages.std() + 1e-8)
        batch = max(1, n // cfg.num_minibatches)
        sums = {"surrogate": 0.0, "value": 0.0, "entropy": 0.0, "kl": 0.0, "clip_fraction": 0.0}
        count = 0
        for _ in range(cfg.num_epochs):
            perm = torch.randperm(n)
            for start in range(0, n - batch + 1, batch):
                idx = perm[start:start + batch]
                dist = self.model.distribution(obs[idx])
                log_prob = dist.log_prob(actions[idx]).sum(-1)
                entropy = dist.entropy().sum(-1).mean()
                value = self.model.value(obs[idx])
                with torch.no_grad():
                    mu, sigma = dist.mean, dist.stddev
                    kl = (torch.log(sigma / old_sigma[idx])
                          + (old_sigma[idx].square() + (old_mu[idx] - mu).square()) / (2.0 * sigma.square())
                          - 0.5).sum(-1).mean()
                if cfg.schedule == "adaptive":
                    if kl > 2.0 * cfg.desired_kl:
                        self.learning_rate = max(cfg.min_lr, self.learning_rate / 1.5)
                    elif 0.0 < kl < 0.5 * cfg.desired_kl:
                        self.learning_rate = min(cfg.max_lr, self.learning_rate * 1.5)
                    for group in self.optimizer.param_groups:
                        group["lr"] = self.learning_rate
                ratio = torch.exp((log_prob - old_log_probs[idx]).clamp(max=20.0))
                adv = advantages[idx]
                surrogate = -torch.min(ratio * adv, ratio.clamp(1 - cfg.clip_param, 1 + cfg.clip_param) * adv).mean()
                if cfg.clip_value:
                    clipped = old_values[idx] + (value - old_values[idx]).clamp(-cfg.clip_param, cfg.clip_param)
                    value_loss = torch.max((value - returns[idx]).square(),
                                           (clipped - returns[idx]).square()).mean()
                else:
                    value_loss = (value - returns[idx]).square().mean()
                loss = surrogate + cfg.value_coef * value_loss - cfg.entropy_coef * entropy
                self.optimizer.zero_grad(set_to_none=True)
                if not bool(torch.isfinite(loss)):
                    # a step this large broke the trust region: skip it and slow down instead of writing NaNs
                    self.skipped_steps += 1
                    self.learning_rate = max(cfg.min_lr, self.learning_rate / 2.0)
                    continue
                loss.backward()
                # actor and critic clipped separately: a large value gradient must not shrink the policy step
                torch.nn.utils.clip_grad_norm_([*self.model.actor.parameters(), self.model.log_std], cfg.max_grad_norm)
                torch.nn.utils.clip_grad_norm_(self.model.critic.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                sums["surrogate"] += float(surrogate.detach())
                sums["value"] += float(value_loss.detach())
                sums["entropy"] += float(entropy.detach())
                sums["kl"] += float(kl)
                sums["clip_fraction"] += float(((ratio - 1.0).abs() > cfg.clip_param).float().mean())
                count += 1
        self.applied_action_replaced = self._replaced / n
        self._replaced = 0
        self.step = 0
        count = max(count, 1)
        out = {f"loss/{k}": v / count for k, v in sums.items() if k in ("surrogate", "value", "entropy")}
        out["policy/kl"] = sums["kl"] / count
        out["policy/clip_fraction"] = sums["clip_fraction"] / count
        out["policy/learning_rate"] = self.learning_rate
        out["policy/action_std"] = float(self.model.action_std.detach().mean())
        out["policy/applied_action_replaced"] = self.applied_action_replaced
        out["policy/skipped_steps"] = float(self.skipped_steps)
        return out

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and numbers only, loadable with torch.load(weights_only=True)."""
        return {"model": self.model.state_dict(), "normalizer": self.normalizer.state_dict(),
                "optimizer": self.optimizer.state_dict(), "learning_rate": self.learning_rate}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.model.load_state_dict(state["model"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.learning_rate = float(state["learning_rate"])
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate
