"""Learning-curve figure: mean episode return against wall-clock time and against environment steps."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path


def plot_learning_curve(wall_s: Sequence[float], env_steps: Sequence[float], returns: Sequence[float],
                        path: str | Path, title: str = "", extra: dict[str, Sequence[float]] | None = None) -> Path:
    """Save a PNG with return vs wall-clock minutes and vs env steps (plus optional extra curves vs minutes)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    extra = extra or {}
    ncols = 2 + len(extra)
    fig, axes = plt.subplots(1, ncols, figsize=(5 * ncols, 3.6), squeeze=False)
    minutes = [w / 60.0 for w in wall_s]
    axes[0, 0].plot(minutes, returns)
    axes[0, 0].set_xlabel("wall-clock [min]")
    axes[0, 0].set_ylabel("mean episode return")
    axes[0, 1].plot(env_steps, returns)
    axes[0, 1].set_xlabel("environment steps")
    for ax, (name, values) in zip(axes[0, 2:], extra.items()):
        ax.plot(minutes[:len(values)], values)
        ax.set_xlabel("wall-clock [min]")
        ax.set_ylabel(name)
    for ax in axes[0]:
        ax.grid(alpha=0.3)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    path = Path(path)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
