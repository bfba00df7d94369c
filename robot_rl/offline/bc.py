"""Behaviour cloning: regress the policy mean on the logged (applied) actions.

    bc = BC(policy, BCConfig())
    losses = bc.update(batch)   # batch: robot_rl.offline.buffer.Batch of raw observations and actions
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from robot_rl.errors import ConfigError
from robot_rl.offline.buffer import Batch
from robot_rl.offline.policy import Policy


@dataclass(frozen=True)
class BCConfig:
    learning_rate: float = 1e-3
    """Adam learning rate."""
    weight_decay: float = 0.0
    """L2 penalty on the policy weights (AdamW)."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""

    def __post_init__(self) -> None:
        if self.learning_rate <= 0 or self.max_grad_norm <= 0 or self.weight_decay < 0:
            raise ConfigError("bc: learning_rate and max_grad_norm must be positive, weight_decay >= 0")


class BC:
    """Mean-squared error between the policy mean and the logged action."""

    def __init__(self, policy: Policy, cfg: BCConfig | None = None) -> None:
        self.cfg = cfg or BCConfig()
        self.policy = policy
        self.optimizer = torch.optim.AdamW(policy.net.parameters(), lr=self.cfg.learning_rate,
                                           weight_decay=self.cfg.weight_decay)

    def update(self, batch: Batch) -> dict[str, float]:
        pred = self.policy.mean(self.policy.normalize(batch.obs))
        loss = torch.nn.functional.mse_loss(pred, batch.action)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.net.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        return {"loss/bc": float(loss.detach())}
