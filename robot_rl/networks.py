"""Networks of every learner: the one Gaussian actor (`Policy`), Q-function ensembles and value MLPs.

`Policy` takes raw observations through fixed normalization statistics (its `obs_mean` / `obs_std` buffers, which
go into the policy contract at export), so the exported actor is exactly `Policy.net` on normalized observations.
PPO keeps the statistics current from its running normalizer; the off-policy and offline learners use the bundle's
or the data's. `Policy.from_bundle` reads a bundle's weights from its ONNX graph's initializers only (never its
TorchScript file, which carries code: fine-tuning an untrusted bundle runs nothing from it) and `Policy.export`
writes a bundle, so bundles flow PPO / SAC -> offline or online fine-tuning -> bundle -> robot without conversion.
Critics are MLPs over (normalized obs, action), optionally with LayerNorm and dropout (DroQ, Hiraoka et al. 2022).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from robot_rl.contract import PolicyContract
from robot_rl.errors import BundleError, ConfigError


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


LOG_STD_MIN, LOG_STD_MAX = -5.0, 1.0
"""Bounds on the policy log standard deviation (std in [0.007, 2.7] action units). The upper bound matters for
entropy-maximizing learners (SAC): with actions clipped to [-1, 1] a wider Gaussian only saturates."""


def check_init_std(value: float, name: str) -> None:
    """A fresh actor's initial std must lie within the log-std bounds (a one-line ConfigError naming `name`)."""
    low, high = math.exp(LOG_STD_MIN), math.exp(LOG_STD_MAX)
    if not low <= value <= high:
        raise ConfigError(f"{name} must be in [{low:.3g}, {high:.3g}] (the actor's std bounds), got {value}")


class Policy(nn.Module):
    """Gaussian policy: mean = net(normalize(obs)), std = exp(log_std) (state-independent); deterministic action =
    mean. Every learner clamps `log_std` to [LOG_STD_MIN, LOG_STD_MAX] after each optimizer step
    (`clamp_log_std_`), so the parameter itself stays in range and keeps its gradient."""

    obs_mean: torch.Tensor
    obs_std: torch.Tensor

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 128, 64),
                 obs_mean: np.ndarray | None = None, obs_std: np.ndarray | None = None,
                 init_std: float = 0.3) -> None:
        super().__init__()
        self.obs_dim, self.act_dim, self.hidden = obs_dim, act_dim, list(hidden)
        self.net = mlp(obs_dim, hidden, act_dim, out_gain=0.01)
        self.log_std = nn.Parameter(torch.full((act_dim,), math.log(init_std)))
        self.clamp_log_std_()
        mean = np.zeros(obs_dim) if obs_mean is None else np.asarray(obs_mean, np.float64)
        std = np.ones(obs_dim) if obs_std is None else np.asarray(obs_std, np.float64)
        self.register_buffer("obs_mean", torch.as_tensor(mean, dtype=torch.float32))
        self.register_buffer("obs_std", torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))

    # ---- statistics ----------------------------------------------------------------------------------------
    def set_statistics(self, obs: np.ndarray, eps: float = 1e-2) -> None:
        """Normalization statistics from data (std = sqrt(var + eps), like the PPO normalizer)."""
        obs = np.asarray(obs, np.float64)
        self.obs_mean.copy_(torch.as_tensor(obs.mean(0), dtype=torch.float32))
        self.obs_std.copy_(torch.as_tensor(np.sqrt(obs.var(0) + eps), dtype=torch.float32))

    def normalize(self, obs: torch.Tensor) -> torch.Tensor:
        return (obs - self.obs_mean) / self.obs_std

    # ---- acting --------------------------------------------------------------------------------------------
    def mean(self, obs_n: torch.Tensor) -> torch.Tensor:
        """Mean action for NORMALIZED observations."""
        return self.net(obs_n)

    @property
    def std(self) -> torch.Tensor:
        return self.log_std.exp()

    def distribution(self, obs_n: torch.Tensor) -> torch.distributions.Normal:
        """Action distribution for NORMALIZED observations (N, obs_dim)."""
        mean = self.net(obs_n)
        return torch.distributions.Normal(mean, self.std.expand_as(mean))

    @torch.no_grad()
    def clamp_log_std_(self) -> None:
        """Keep log_std within [LOG_STD_MIN, LOG_STD_MAX] (after every optimizer step)."""
        self.log_std.clamp_(LOG_STD_MIN, LOG_STD_MAX)

    @torch.no_grad()
    def act(self, obs_raw: np.ndarray, deterministic: bool = True) -> np.ndarray:
        """Actions for raw observations (numpy in, numpy out)."""
        obs_n = self.normalize(torch.as_tensor(np.asarray(obs_raw, np.float32)))
        if deterministic:
            return self.net(obs_n).numpy()
        return self.distribution(obs_n).sample().numpy()

    # ---- bundles -------------------------------------------------------------------------------------------
    @classmethod
    def from_bundle(cls, path: str | Path, init_std: float = 0.3) -> tuple[Policy, PolicyContract]:
        """The bundle's actor weights and observation statistics, and its contract. The weights come from the
        ONNX graph's initializers (robot_rl.bundle.read_mlp): no code from the bundle runs, `policy.pt` is never
        loaded (TorchScript is code, and an untrusted bundle's would run here)."""
        from robot_rl.bundle import ACTIVATIONS, CONTRACT_FILE, ONNX_FILE, read_mlp

        path = Path(path)
        if not (path / CONTRACT_FILE).is_file():
            raise BundleError(f"bundle {path} is missing {CONTRACT_FILE}")
        contract = PolicyContract.load(path / CONTRACT_FILE)
        file = path / ONNX_FILE
        if not file.is_file():
            raise BundleError(f"bundle {path} is missing {ONNX_FILE} (a learner reads the actor's weights from the "
                              "ONNX graph only)")
        layers = read_mlp(file)
        codes = [code for _, _, code in layers]
        if codes[-1] != 0 or any(code != ACTIVATIONS["Elu"] for code in codes[:-1]):
            raise BundleError(f"{file}: not an ELU MLP actor (activations {codes}); only those can initialize a "
                              "learner")
        dims = [layers[0][0].shape[0]] + [w_t.shape[1] for w_t, _, _ in layers]
        if dims[0] != contract.obs_dim or dims[-1] != contract.act_dim:
            raise BundleError(f"{file}: network maps {dims[0]} -> {dims[-1]}, contract says "
                              f"{contract.obs_dim} -> {contract.act_dim}")
        mean = contract.obs_mean if contract.obs_mean is not None else np.zeros(contract.obs_dim)
        std = contract.obs_std if contract.obs_std is not None else np.ones(contract.obs_dim)
        policy = cls(contract.obs_dim, contract.act_dim, dims[1:-1], np.asarray(mean), np.asarray(std), init_std)
        linears = [m for m in policy.net if isinstance(m, nn.Linear)]
        with torch.no_grad():
            for lin, (w_t, b, _) in zip(linears, layers):
                lin.weight.copy_(torch.from_numpy(np.ascontiguousarray(w_t.T)))
                lin.bias.copy_(torch.from_numpy(b))
        return policy, contract

    def export(self, path: str | Path, contract: PolicyContract, provenance: dict[str, Any],
               metrics: dict[str, Any]) -> Path:
        """Write a bundle: the contract with this policy's statistics and merged provenance (the git commit is
        the current one), and `net`."""
        from robot_rl.bundle import export_bundle

        if contract.obs_dim != self.obs_dim or contract.act_dim != self.act_dim:
            raise BundleError(f"policy maps {self.obs_dim} -> {self.act_dim}, contract says "
                              f"{contract.obs_dim} -> {contract.act_dim}")
        merged = {k: v for k, v in {**contract.provenance, **provenance}.items() if k != "git_commit"}
        contract = contract.replace(obs_mean=self.obs_mean.tolist(), obs_std=self.obs_std.tolist(),
                                    provenance=merged)
        return export_bundle(path, contract, _Actor(self.net), metrics)


class _Actor(nn.Module):
    """What a bundle holds: the deterministic actor on normalized observations."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net = net

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return self.net(obs)


class Critic(nn.Module):
    """An ensemble of Q(s, a) MLPs evaluated in one call: returns (ensemble, N)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int] = (256, 256), num_q: int = 2,
                 layer_norm: bool = False, dropout: float = 0.0) -> None:
        super().__init__()
        self.qs = nn.ModuleList([_q_mlp(obs_dim + act_dim, hidden, layer_norm, dropout) for _ in range(num_q)])

    def forward(self, obs_n: torch.Tensor, action: torch.Tensor) -> torch.Tensor:
        x = torch.cat([obs_n, action], dim=-1)
        return torch.stack([q(x).squeeze(-1) for q in self.qs])


class ValueNet(nn.Module):
    """V(s) MLP (IQL)."""

    def __init__(self, obs_dim: int, hidden: Sequence[int] = (256, 256), layer_norm: bool = False) -> None:
        super().__init__()
        self.net = _q_mlp(obs_dim, hidden, layer_norm, 0.0)

    def forward(self, obs_n: torch.Tensor) -> torch.Tensor:
        return self.net(obs_n).squeeze(-1)


def _q_mlp(in_dim: int, hidden: Sequence[int], layer_norm: bool, dropout: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    last = in_dim
    for width in hidden:
        layers.append(nn.Linear(last, width))
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        if layer_norm:
            layers.append(nn.LayerNorm(width))
        layers.append(nn.ReLU())
        last = width
    layers.append(nn.Linear(last, 1))
    return nn.Sequential(*layers)


def soft_update(target: nn.Module, source: nn.Module, tau: float) -> None:
    """Polyak averaging of parameters: target <- (1 - tau) target + tau source."""
    with torch.no_grad():
        for t, s in zip(target.parameters(), source.parameters()):
            t.lerp_(s, tau)
