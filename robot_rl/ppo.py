"""Proximal Policy Optimization for CPU training, in the rsl_rl shape (the learner protocol, robot_rl.learner):

    actions = ppo.act(obs)                       # samples, records obs/value/log-prob
    obs, rew, terminated, truncated, info = env.step(actions)
    ppo.process_env_step(obs, rew, terminated, truncated, info)
    ...                                          # num_steps (= ppo.rollout_steps) times
    losses = ppo.update()                        # GAE from the last observation, then the PPO epochs

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
from robot_rl.learner import LearnerSetup
from robot_rl.networks import Policy, check_init_std, mlp
from robot_rl.normalizer import RunningNormalizer


@dataclass(frozen=True)
class PPOConfig:
    """PPO hyperparameters and the fresh actor-critic it builds (a bundle's actor brings its own layers)."""

    num_steps: int = 24
    """Rollout length per environment and iteration: every update learns from num_envs * num_steps transitions
    (the learner's rollout_steps)."""
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
    """Lower bound of the adaptive learning rate."""
    max_lr: float = 3e-3
    """Upper bound of the adaptive learning rate (Adam on CPU-sized minibatches diverges near 1e-2)."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""
    init_noise_std: float = 0.6
    """Initial standard deviation of the Gaussian policy (in action units; the A1 scales actions by 0.25 rad)."""
    actor_hidden: list[int] = field(default_factory=lambda: [256, 128, 64])
    """Hidden widths of a fresh actor (ELU MLP)."""
    critic_hidden: list[int] = field(default_factory=lambda: [256, 128, 64])
    """Hidden widths of the value MLP."""
    normalize_obs: bool = True
    """Running mean/std observation normalization (its statistics go into the bundle contract); off: the actor's
    own fixed statistics (a bundle's, when fine-tuning it)."""
    critic_warmup: int = 0
    """Iterations at the start that fit only the value function (actor and log std frozen): when starting from a
    trained actor, its first steps then follow a fitted advantage rather than a random critic."""
    normalize_advantage: bool = True
    """Standardize the advantages of each rollout."""
    store_applied_action: bool = False
    """Store info["applied_action"] (after the safety chain) instead of the sampled action where they differ. Off
    by default: where the chain clips hard, the stored actions sit several standard deviations from the policy
    mean and the mean runs away beyond the action clip. With the sampled action stored, the chain is part of the
    environment and the policy still observes the applied action as last_action (docs/safety.md, Training cost
    on the A1)."""

    def __post_init__(self) -> None:
        if self.critic_warmup < 0:
            raise ConfigError(f"ppo.critic_warmup must be >= 0, got {self.critic_warmup}")
        for name in ("num_steps", "num_epochs", "num_minibatches"):
            if getattr(self, name) < 1:
                raise ConfigError(f"ppo.{name} must be >= 1, got {getattr(self, name)}")
        for name in ("gamma", "lam"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ConfigError(f"ppo.{name} must be in [0, 1], got {getattr(self, name)}")
        for name in ("clip_param", "learning_rate", "desired_kl", "init_noise_std", "max_grad_norm"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"ppo.{name} must be positive, got {getattr(self, name)}")
        check_init_std(self.init_noise_std, "ppo.init_noise_std")

    def new_policy(self, obs_dim: int, act_dim: int) -> Policy:
        return Policy(obs_dim, act_dim, self.actor_hidden, init_std=self.init_noise_std)


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
    """PPO learner with its rollout storage, the actor, a value MLP, the observation normalizer and the optimizer."""

    def __init__(self, policy: Policy, cfg: PPOConfig, setup: LearnerSetup) -> None:
        if setup.offline is not None:
            raise ConfigError("ppo learns on-policy: it takes no logged data")
        obs_dim, act_dim, num_envs = policy.obs_dim, policy.act_dim, setup.num_envs
        self.cfg = cfg
        self.num_envs = num_envs
        self.action_clip = setup.action_clip
        self.policy = policy
        self.critic = mlp(obs_dim, cfg.critic_hidden, 1, out_gain=1.0)
        self.normalizer = RunningNormalizer(obs_dim)
        self.optimizer = torch.optim.Adam([*policy.parameters(), *self.critic.parameters()], lr=cfg.learning_rate)
        self.learning_rate = cfg.learning_rate
        self.iterations = 0
        """Updates done (the critic warm-up counts them)."""
        self._next_obs: torch.Tensor | None = None
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

    @property
    def rollout_steps(self) -> int:
        return self.cfg.num_steps

    def value(self, obs_n: torch.Tensor) -> torch.Tensor:
        """State value (N,) for normalized observations."""
        return self.critic(obs_n).squeeze(-1)

    # ---- acting --------------------------------------------------------------------------------------------
    def normalize(self, obs: torch.Tensor, update: bool = False) -> torch.Tensor:
        if not self.cfg.normalize_obs:
            return self.policy.normalize(obs)
        if update:
            self.normalizer.update(obs)
            self._sync_statistics()
        return self.normalizer(obs)

    @torch.no_grad()
    def _sync_statistics(self) -> None:
        """The running statistics become the actor's, so that `policy` acts and exports as trained."""
        if self.cfg.normalize_obs:
            self.policy.obs_mean.copy_(self.normalizer.mean.float())
            self.policy.obs_std.copy_(self.normalizer.std.float())

    @torch.no_grad()
    def act(self, obs: np.ndarray) -> np.ndarray:
        """Sample actions for raw observations (N, obs_dim) and record the transition's first half."""
        if self.step >= self.cfg.num_steps:
            raise RuntimeError("rollout storage is full: call update()")
        obs_t = torch.nan_to_num(torch.from_numpy(np.asarray(obs, np.float32)), nan=0.0, posinf=1e6, neginf=-1e6)
        obs_n = self.normalize(obs_t, update=True)
        dist = self.policy.distribution(obs_n)
        actions = dist.sample()
        t = self.step
        self.obs[t] = obs_n
        self.actions[t] = actions
        self.mu[t] = dist.mean
        self.sigma[t] = dist.stddev
        self.log_probs[t] = dist.log_prob(actions).sum(-1)
        self.values[t] = self.value(obs_n)
        return actions.numpy()

    @torch.no_grad()
    def process_env_step(self, next_obs: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                         truncated: np.ndarray, info: dict[str, Any]) -> None:
        """Record the transition's second half; bootstrap the value of time-limit truncations."""
        t = self.step
        self._next_obs = torch.from_numpy(np.array(next_obs, np.float32))
        rew = torch.nan_to_num(torch.as_tensor(np.asarray(rewards), dtype=torch.float32).clone(), nan=0.0)
        term = torch.as_tensor(np.asarray(terminated), dtype=torch.bool)
        trunc = torch.as_tensor(np.asarray(truncated), dtype=torch.bool) & ~term
        if bool(trunc.any()):
            final = torch.as_tensor(np.asarray(info["final_obs"]), dtype=torch.float32)[trunc]
            final = torch.nan_to_num(final, nan=0.0, posinf=1e6, neginf=-1e6)
            rew[trunc] += self.cfg.gamma * self.value(self.normalize(final))
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
    def compute_returns(self, last_obs: np.ndarray | torch.Tensor) -> None:
        """GAE over the full rollout, bootstrapping from the value of the observation after the last step."""
        if self.step != self.cfg.num_steps:
            raise RuntimeError(f"rollout has {self.step} of {self.cfg.num_steps} steps")
        last_value = self.value(self.normalize(torch.as_tensor(np.asarray(last_obs), dtype=torch.float32)))
        self.advantages, self.returns = compute_gae(self.rewards, self.values, self.dones, last_value,
                                                    self.cfg.gamma, self.cfg.lam)

    def update(self) -> dict[str, float]:
        """GAE from the last observation seen, then PPO epochs over the rollout; returns mean losses and
        statistics, and empties the storage."""
        cfg = self.cfg
        if self._next_obs is None:
            raise RuntimeError("update() before a full rollout")
        self.compute_returns(self._next_obs)
        warming = self.iterations < cfg.critic_warmup
        for p in self.policy.parameters():
            p.requires_grad_(not warming)
        if cfg.critic_warmup and self.iterations == cfg.critic_warmup:
            # the adaptive schedule raised the rate while the actor was frozen (KL 0): start the actor gently
            self.learning_rate = cfg.learning_rate
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
                dist = self.policy.distribution(obs[idx])
                log_prob = dist.log_prob(actions[idx]).sum(-1)
                entropy = dist.entropy().sum(-1).mean()
                value = self.value(obs[idx])
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
                torch.nn.utils.clip_grad_norm_([*self.policy.net.parameters(), self.policy.log_std], cfg.max_grad_norm)
                torch.nn.utils.clip_grad_norm_(self.critic.parameters(), cfg.max_grad_norm)
                self.optimizer.step()
                self.policy.clamp_log_std_()
                sums["surrogate"] += float(surrogate.detach())
                sums["value"] += float(value_loss.detach())
                sums["entropy"] += float(entropy.detach())
                sums["kl"] += float(kl)
                sums["clip_fraction"] += float(((ratio - 1.0).abs() > cfg.clip_param).float().mean())
                count += 1
        self.applied_action_replaced = self._replaced / n
        self._replaced = 0
        self.step = 0
        self.iterations += 1
        count = max(count, 1)
        out = {f"loss/{k}": v / count for k, v in sums.items() if k in ("surrogate", "value", "entropy")}
        out["policy/kl"] = sums["kl"] / count
        out["policy/clip_fraction"] = sums["clip_fraction"] / count
        out["policy/learning_rate"] = self.learning_rate
        out["policy/action_std"] = float(self.policy.std.detach().mean())
        out["policy/applied_action_replaced"] = self.applied_action_replaced
        out["policy/skipped_steps"] = float(self.skipped_steps)
        return out

    # ---- checkpoints ---------------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        """Plain tensors and numbers only, loadable with torch.load(weights_only=True)."""
        return {"policy": self.policy.state_dict(), "critic": self.critic.state_dict(),
                "normalizer": self.normalizer.state_dict(), "optimizer": self.optimizer.state_dict(),
                "learning_rate": self.learning_rate, "iterations": self.iterations}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.policy.load_state_dict(state["policy"])
        self.critic.load_state_dict(state["critic"])
        self.normalizer.load_state_dict(state["normalizer"])
        self.iterations = int(state["iterations"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.learning_rate = float(state["learning_rate"])
        for group in self.optimizer.param_groups:
            group["lr"] = self.learning_rate
