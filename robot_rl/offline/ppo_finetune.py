"""Online PPO fine-tuning of a bundle's actor in simulation (e.g. on the parameters system identification found),
with the safety chain in the loop.

    policy, contract = Policy.from_bundle("bundle", init_std=0.2)
    env = make_vec_env("a1_walk", 16, 0, overrides=fit_overrides, safety=True)
    stats = ppo_finetune(policy, env, PPOFinetuneConfig(iterations=150))
    policy.export("bundle2", contract, provenance, stats)

The PPO learner (robot_rl.ppo) starts from the bundle's actor; observations are normalized with the bundle's fixed
statistics (its weights assume them; the running normalizer is off), so the result exports with the same contract
statistics. The value function starts from scratch and is first fitted for `critic_warmup` iterations with the
actor frozen, so the first policy steps follow a meaningful advantage rather than a random critic. The environment
runs the safety chain (make_vec_env(..., safety=True)): the policy acts through it and its intervention penalty is
part of the reward; interventions are counted.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from robot_rl.errors import ConfigError
from robot_rl.offline.buffer import intervened_mask
from robot_rl.offline.policy import Policy


@dataclass(frozen=True)
class PPOFinetuneConfig:
    iterations: int = 150
    """PPO iterations (each collects num_envs * num_steps transitions)."""
    num_steps: int = 24
    """Rollout length per environment and iteration."""
    critic_warmup: int = 10
    """Iterations at the start that fit only the value function (actor and log std frozen)."""
    learning_rate: float = 3e-4
    """Initial learning rate (adaptive on the KL, as in training)."""
    desired_kl: float = 0.005
    """Target KL per minibatch (half the training default: fine-tuning should stay near the start policy)."""
    init_std: float = 0.2
    """Initial exploration std (action units)."""
    entropy_coef: float = 0.0
    num_epochs: int = 5
    num_minibatches: int = 4
    seed: int = 0

    def __post_init__(self) -> None:
        if self.iterations < 1 or self.num_steps < 1 or self.critic_warmup < 0:
            raise ConfigError("ppo finetune: iterations >= 1, num_steps >= 1, critic_warmup >= 0")
        if self.init_std <= 0 or self.learning_rate <= 0 or self.desired_kl <= 0:
            raise ConfigError("ppo finetune: init_std, learning_rate and desired_kl must be positive")


def _set_trainable(modules: list[nn.Module | nn.Parameter], flag: bool) -> None:
    for m in modules:
        params = [m] if isinstance(m, nn.Parameter) else list(m.parameters())
        for p in params:
            p.requires_grad_(flag)


def ppo_finetune(policy: Policy, env: Any, cfg: PPOFinetuneConfig | None = None, action_clip: float | None = None,
                 callback: Callable[[int, dict[str, float]], None] | None = None) -> dict[str, float]:
    """Fine-tune `policy.net` in place with PPO in `env` (a VecEnv); returns summary statistics: transitions,
    episodes, mean training return of the last 20 episodes, interventions per transition."""
    from robot_rl.ppo import PPO, PPOConfig

    cfg = cfg or PPOFinetuneConfig()
    if env.obs_dim != policy.obs_dim or env.act_dim != policy.act_dim:
        raise ConfigError(f"env obs/act dims {env.obs_dim}/{env.act_dim} differ from the policy's "
                          f"{policy.obs_dim}/{policy.act_dim}")
    torch.manual_seed(cfg.seed)
    ppo = PPO(policy.obs_dim, policy.act_dim, env.num_envs,
              PPOConfig(num_steps=cfg.num_steps, num_epochs=cfg.num_epochs, num_minibatches=cfg.num_minibatches,
                        learning_rate=cfg.learning_rate, desired_kl=cfg.desired_kl, init_noise_std=cfg.init_std,
                        entropy_coef=cfg.entropy_coef, actor_hidden=list(policy.hidden), normalize_obs=False),
              action_clip=action_clip)
    ppo.model.actor.load_state_dict(policy.net.state_dict())

    def norm(obs: np.ndarray) -> torch.Tensor:
        with torch.no_grad():
            return policy.normalize(torch.as_tensor(np.asarray(obs, np.float32)))

    obs = env.reset(seed=cfg.seed)
    returns: list[float] = []
    transitions = interventions = 0
    stats: dict[str, float] = {}
    frozen: list[nn.Module | nn.Parameter] = [ppo.model.actor, ppo.model.log_std]
    for it in range(cfg.iterations):
        _set_trainable(frozen, it >= cfg.critic_warmup)
        if it == cfg.critic_warmup:
            # the adaptive schedule raised the rate while the actor was frozen (KL 0): start the actor gently
            ppo.learning_rate = cfg.learning_rate
        for _ in range(cfg.num_steps):
            actions = ppo.act(norm(obs))
            obs, rew, term, trunc, info = env.step(actions.numpy())
            if "final_obs" in info:
                info = {**info, "final_obs": norm(info["final_obs"]).numpy()}
            ppo.process_env_step(rew, term, trunc, info)
            interventions += int(intervened_mask(info, env.num_envs).sum())
            transitions += env.num_envs
            returns += [float(ep["return"]) for ep in info.get("episodes", [])]
        ppo.compute_returns(norm(obs))
        losses = ppo.update()
        stats = {"iteration": float(it + 1), "transitions": float(transitions),
                 "return_mean": float(np.mean(returns[-20:])) if returns else float("nan"), **losses}
        if callback is not None:
            callback(it + 1, stats)
    _set_trainable(frozen, True)
    policy.net.load_state_dict(ppo.model.actor.state_dict())
    with torch.no_grad():
        policy.log_std.copy_(ppo.model.log_std.detach())
    return {"transitions": float(transitions), "episodes": float(len(returns)),
            "return_mean": float(np.mean(returns[-20:])) if returns else float("nan"),
            "intervention_rate": interventions / max(transitions, 1),
            **{k: v for k, v in stats.items() if k.startswith(("loss/", "policy/"))}}
