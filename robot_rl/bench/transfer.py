"""Sim-to-sim transfer: evaluate policy bundles in the engine they were trained in and in the other one, through
the bundle and its contract only (no trainer objects), and report the ratio cross-engine / in-engine.

`robot-rl bench transfer --bundle dr=runs/a1-dr/bundle --bundle nodr=runs/a1-nodr/bundle [--episodes 20]
[--set task_overrides=[...]]`

Both engines run the task's nominal world (randomization off, the bundle's own task and evaluation overrides
otherwise), so the only difference between the two evaluations is the engine. Per bundle and engine: mean return,
success rate, tracking error (locomotion), fall rate, and the share of policy steps the safety chain corrected.
`keep` = cross-engine return / in-engine return (and the same for success where the task defines it).
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from robot_rl.config import add_field_flags, config_from_args
from robot_rl.errors import ConfigError

ENGINES = ("mujoco", "pybullet")


def evaluate_bundle(bundle_dir: str | Path, backend: str, episodes: int, seed: int,
                    extra_overrides: list[str] | None = None) -> dict[str, Any]:
    """robot_rl.evaluation.evaluate_bundle of the bundle folder."""
    from robot_rl.bundle import load_bundle
    from robot_rl.evaluation import evaluate_bundle as evaluate_loaded

    return evaluate_loaded(load_bundle(bundle_dir), bundle_dir, backend, episodes, seed, extra_overrides)


@dataclass(frozen=True)
class TransferBenchConfig:
    """`robot-rl bench transfer` settings (`--bundle NAME=PATH` is `--set bundle.NAME=PATH`)."""

    bundle: dict[str, str] = field(default_factory=dict)
    """Bundles to evaluate in both engines: name -> bundle folder."""
    episodes: int = 20
    """Episodes per bundle and engine."""
    seed: int = 777
    """Evaluation seed."""
    task_overrides: list[str] = field(default_factory=list)
    """Task overrides for both engines, after randomization.enabled=false."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_field_flags(parser, TransferBenchConfig, 'episodes=100 task_overrides=["commands.vx=[0.5,0.5]"]')


def _keep(cross: dict[str, Any], home: dict[str, Any], key: str) -> float | None:
    if key not in cross or key not in home or abs(home[key]) < 1e-9:
        return None
    return round(float(cross[key] / home[key]), 3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = config_from_args(TransferBenchConfig, args)
    if cfg.episodes < 1:
        raise ConfigError("episodes must be >= 1")
    if not cfg.bundle:
        raise ConfigError("bundle: name at least one bundle (--bundle NAME=PATH)")
    overrides = ["randomization.enabled=false", *cfg.task_overrides]
    rows = []
    for name, path in cfg.bundle.items():
        if not Path(path).is_dir():
            raise ConfigError(f"bundle.{name}: {path} is not a bundle folder")
        from robot_rl.bundle import load_bundle

        prov = load_bundle(path).metadata
        home = str(prov.get("backend", "mujoco")).split()[0]
        if home not in ENGINES:
            raise ConfigError(f"bundle {path} was trained on '{home}', not one of {', '.join(ENGINES)}")
        other = ENGINES[1 - ENGINES.index(home)]
        randomized = bool((prov.get("randomization") or {}).get("enabled", True))
        res = {e: evaluate_bundle(path, e, cfg.episodes, cfg.seed, overrides) for e in (home, other)}
        row = {"name": name, "task": res[home]["task"], "trained_in": home, "trained_with_dr": randomized,
               "in_engine": res[home], "cross_engine": res[other],
               "keep_return": _keep(res[other], res[home], "return_mean"),
               "keep_success": _keep(res[other], res[home], "success_mean")}
        rows.append(row)
        nan = float("nan")
        print(f"{name}: {row['task']} trained in {home} (DR {randomized}): return {res[home]['return_mean']:.3f} -> "
              f"{res[other]['return_mean']:.3f} in {other} (keep {row['keep_return']}), success "
              f"{res[home].get('success_mean', nan):.2f} -> {res[other].get('success_mean', nan):.2f}", flush=True)
    return {"benchmark": "transfer", "episodes": cfg.episodes, "overrides": overrides, "rows": rows}
