"""Behaviour cloning: regress the policy mean on the logged (applied) actions.

    bc = BC(policy, BCConfig(), LearnerSetup(offline=ReplayBuffer.from_transitions(data)))
    losses = bc.update()   # one step on a batch of raw observations and actions

It follows the learner protocol (robot_rl.learner); collecting online, it clones whatever it collected (its own
actions after the safety chain) next to the logged data.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch

from robot_rl.errors import ConfigError
from robot_rl.learner import LearnerSetup
from robot_rl.networks import Policy
from robot_rl.offline.buffer import Batch
from robot_rl.offline.offpolicy import ActorConfig, ReplayConfig, ReplayLearner


@dataclass(frozen=True)
class BCConfig:
    replay: ReplayConfig = field(default_factory=ReplayConfig)
    """Batches (and collection when run online)."""
    actor: ActorConfig = field(default_factory=lambda: ActorConfig(learning_rate=1e-3))
    """Fresh actor and its (AdamW) learning rate."""
    weight_decay: float = 0.0
    """L2 penalty on the policy weights (AdamW)."""
    max_grad_norm: float = 1.0
    """Gradient-norm clip."""

    def __post_init__(self) -> None:
        if self.max_grad_norm <= 0 or self.weight_decay < 0:
            raise ConfigError("bc: max_grad_norm must be positive, weight_decay >= 0")

class BC(ReplayLearner):
    """Mean-squared error between the policy mean and the logged action."""

    def __init__(self, policy: Policy, cfg: BCConfig, setup: LearnerSetup) -> None:
        super().__init__(policy, cfg.replay, setup)
        self.cfg = cfg
        self.optimizer = torch.optim.AdamW(policy.net.parameters(), lr=cfg.actor.learning_rate,
                                           weight_decay=cfg.weight_decay)

    def parts(self) -> dict[str, Any]:
        return {"policy": self.policy, "optimizer": self.optimizer}

    def step(self, batch: Batch) -> dict[str, float]:
        """One regression step on `batch`."""
        loss = torch.nn.functional.mse_loss(self.policy.mean(self.policy.normalize(batch.obs)), batch.action)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(self.policy.net.parameters(), self.cfg.max_grad_norm)
        self.optimizer.step()
        return {"loss/bc": float(loss.detach())}
