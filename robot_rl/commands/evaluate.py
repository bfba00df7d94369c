"""`robot-rl eval RUN_OR_BUNDLE [--episodes N] [--backend mujoco|pybullet]`: deterministic evaluation, JSON output.

A bundle (or a run folder's bundle/) is evaluated through `load_bundle` and its contract only; a run without a
bundle, or a checkpoint file, through the learner stored in the checkpoint. Both through robot_rl.evaluation.
"""

from __future__ import annotations

import argparse
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RUN_OR_BUNDLE", help="bundle folder, run folder or checkpoint file")
    parser.add_argument("--episodes", type=int, default=10, help="episodes (one per parallel environment)")
    parser.add_argument("--backend", choices=["mujoco", "pybullet"], help="simulator (default: the training one)")
    parser.add_argument("--runtime", choices=["onnx", "torchscript"], default="onnx", help="bundle runtime")
    parser.add_argument("--seed", type=int, default=12345)
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="task config overrides for evaluation (e.g. a fixed command)")
    parser.add_argument("--out", type=Path, help="also write the JSON result to this file")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from robot_rl.errors import ConfigError
    from robot_rl.evaluation import evaluate, evaluate_bundle
    from robot_rl.runner import make_env

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    source = Path(args.source)
    bundle_dir = source if (source / "contract.json").is_file() else source / "bundle"
    result: dict[str, Any]
    if (bundle_dir / "contract.json").is_file():
        from robot_rl.bundle import load_bundle

        bundle = load_bundle(bundle_dir, runtime=args.runtime)
        backend = args.backend or str(bundle.metadata.get("backend", "mujoco")).split()[0]
        result = {"source": f"bundle {bundle_dir} ({args.runtime})",
                  **evaluate_bundle(bundle, bundle_dir, backend, args.episodes, args.seed, args.overrides)}
    else:
        from robot_rl.runner import find_checkpoint, learner_from_checkpoint, load_checkpoint

        ckpt = find_checkpoint(source)
        cfg, _, learner = learner_from_checkpoint(load_checkpoint(ckpt))
        task, backend = cfg.task, args.backend or cfg.backend
        env = make_env(task, args.episodes, args.seed, backend,
                       [*cfg.task_overrides, *cfg.eval_overrides, *args.overrides])
        policy: Callable[[np.ndarray], np.ndarray] = learner.policy.act
        try:
            summary = evaluate(policy, env, args.episodes, args.seed)
        finally:
            env.close()
        result = {"source": f"checkpoint {ckpt}", "task": task, "backend": backend, **summary}
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0
