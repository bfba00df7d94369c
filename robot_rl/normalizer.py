"""Running observation normalization (parallel Welford/Chan update), as torch buffers so it checkpoints with the
model. Its mean/std are what the policy contract carries as `obs_mean`/`obs_std` at export."""

from __future__ import annotations

import torch
from torch import nn


class RunningNormalizer(nn.Module):
    """y = (x - mean) / std with std = sqrt(var + eps); statistics updated from batches while training."""

    mean: torch.Tensor
    var: torch.Tensor
    count: torch.Tensor

    def __init__(self, dim: int, eps: float = 1e-2, until: int | None = None) -> None:
        super().__init__()
        self.eps = eps
        self.until = until
        """Stop updating after this many samples (None: never stop)."""
        self.register_buffer("mean", torch.zeros(dim, dtype=torch.float64))
        self.register_buffer("var", torch.ones(dim, dtype=torch.float64))
        self.register_buffer("count", torch.zeros((), dtype=torch.float64))

    @torch.no_grad()
    def update(self, x: torch.Tensor) -> None:
        """Fold a batch (N, dim) into the running statistics."""
        if self.until is not None and self.count.item() >= self.until:
            return
        x = x.to(torch.float64)
        n = x.shape[0]
        if n == 0:
            return
        batch_mean = x.mean(0)
        batch_var = x.var(0, unbiased=False)
        total = self.count + n
        delta = batch_mean - self.mean
        new_mean = self.mean + delta * (n / total)
        m2 = self.var * self.count + batch_var * n + delta.square() * (self.count * n / total)
        self.mean.copy_(new_mean)
        self.var.copy_(m2 / total)
        self.count.copy_(total)

    @property
    def std(self) -> torch.Tensor:
        return torch.sqrt(self.var + self.eps)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return ((x - self.mean.to(x.dtype)) / self.std.to(x.dtype)).to(x.dtype)

    def stats(self) -> tuple[list[float], list[float]]:
        """(mean, std) as float lists, the form the policy contract stores."""
        return self.mean.float().tolist(), self.std.float().tolist()
