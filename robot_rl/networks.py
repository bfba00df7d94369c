"""Actor-critic networks: ELU MLPs, a Gaussian policy with a state-independent log standard deviation.

Both networks take NORMALIZED observations; the running normalizer lives next to them in the PPO learner and its
statistics go into the policy contract at export, so the exported actor is exactly `ActorCritic.actor`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


def mlp(in_dim: int, hidden: Sequence[int], out_dim: int, out_gain: float = 1.0) -> nn.Sequential:
    """ELU MLP with orthogonal initialisation; the output layer is scaled by `out_gain`."""
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layer = nn.Linear(last, width)
        nn.init.orthogonal_(layer.weight, math.sqrt(2.0))
        nn.init.zeros_(layer.bias)
        layers += [layer, nn.ELU()]
        last = width
    out = nn.Linear(last, out_dim)
    nn.init.orthogonal_(out.weight, out_gain)
    nn.init.zeros_(out.bias)
    layers.append(out)
    return nn.Sequential(*layers)


LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
"""Bounds on the policy log standard deviation (std in [0.007, 7.4])."""


class ActorCritic(nn.Module):
    """Gaussian actor (mean = MLP(obs), std = exp(log_std), state-independent) and a value MLP."""

    def __init__(self, obs_dim: int, act_dim: int, actor_hidden: Sequence[int] = (256, 128, 64),
                 critic_hidden: Sequence[int] = (256, 128, 64), init_noise_std: float = 1.0) -> None:
        super().__init__()
        self.obs_dim = obs_dim
        self.act_dim = act_dim
        self.actor = mlp(obs_dim, actor_hidden, act_dim, out_gain=0.01)
        self.critic = mlp(obs_dim, critic_hidden, 1, out_gain=1.0)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_noise_std)))

    def distribution(self, obs: torch.Tensor) -> torch.distributions.Normal:
        """Action distribution for normalized observations (N, obs_dim)."""
        mean = self.actor(obs)
        std = self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
        return torch.distributions.Normal(mean, std.expand_as(mean))

    def value(self, obs: torch.Tensor) -> torch.Tensor:
        """State value (N,) for normalized observations."""
        return self.critic(obs).squeeze(-1)

    def act_deterministic(self, obs: torch.Tensor) -> torch.Tensor:
        return self.actor(obs)

    @property
    def action_std(self) -> torch.Tensor:
        return self.log_std.clamp(LOG_STD_MIN, LOG_STD_MAX).exp()
