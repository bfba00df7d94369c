"""`robot-rl eval RUN_OR_BUNDLE [--episodes N] [--backend mujoco|pybullet] [--config FILE.yaml] [--set KEY=VALUE]`:
deterministic evaluation, JSON output.

A bundle (or a run folder's bundle/) is evaluated through `load_bundle` and its contract only; a run without a
bundle, or a checkpoint file, through the learner stored in the checkpoint. Both through robot_rl.evaluation.
Settings are an `EvalConfig` (`--config`, `--set`, a flag per field); task overrides are its `task_overrides`.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from robot_rl.config import add_field_flags, config_from_args


@dataclass(frozen=True)
class EvalConfig:
    """`robot-rl eval` settings."""

    episodes: int = 10
    """Episodes to evaluate, one per parallel environment."""
    backend: Literal["", "mujoco", "pybullet"] = ""
    """Physics engine to evaluate in ("": the one the policy was trained in)."""
    runtime: Literal["onnx", "torchscript"] = "onnx"
    """Runtime that runs a bundle's policy."""
    seed: int = 12345
    """Evaluation seed."""
    task_overrides: list[str] = field(default_factory=list)
    """Task config overrides for evaluation, applied after the training's task and evaluation overrides: a fixed
    command is commands.vx=[0.5,0.5]."""
    out: str = ""
    """Also write the JSON result to this file ("": print only)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RUN_OR_BUNDLE", help="bundle folder, run folder or checkpoint file")
    add_field_flags(parser, EvalConfig, "episodes=50 task_overrides=[\"commands.vx=[0.5,0.5]\"]")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from robot_rl.errors import ConfigError
    from robot_rl.evaluation import evaluate, evaluate_bundle
    from robot_rl.runner import make_env

    cfg = config_from_args(EvalConfig, args)
    if cfg.episodes < 1:
        raise ConfigError(f"episodes must be >= 1, got {cfg.episodes}")
    source = Path(args.source)
    bundle_dir = source if (source / "contract.json").is_file() else source / "bundle"
    result: dict[str, Any]
    if (bundle_dir / "contract.json").is_file():
        from robot_rl.bundle import load_bundle

        bundle = load_bundle(bundle_dir, runtime=cfg.runtime)
        backend = cfg.backend or str(bundle.metadata.get("backend", "mujoco")).split()[0]
        result = {"source": f"bundle {bundle_dir} ({cfg.runtime})",
                  **evaluate_bundle(bundle, bundle_dir, backend, cfg.episodes, cfg.seed, cfg.task_overrides)}
    else:
        from robot_rl.runner import find_checkpoint, learner_from_checkpoint, load_checkpoint

        ckpt = find_checkpoint(source)
        train, _, learner = learner_from_checkpoint(load_checkpoint(ckpt))
        task, backend = train.task, cfg.backend or train.backend
        env = make_env(task, cfg.episodes, cfg.seed, backend,
                       [*train.task_overrides, *train.eval_overrides, *cfg.task_overrides])
        policy: Callable[[np.ndarray], np.ndarray] = learner.policy.act
        try:
            summary = evaluate(policy, env, cfg.episodes, cfg.seed)
        finally:
            env.close()
        result = {"source": f"checkpoint {ckpt}", "task": task, "backend": backend, **summary}
    text = json.dumps(result)
    if cfg.out:
        Path(cfg.out).write_text(text + "\n")
    print(text)
    return 0
