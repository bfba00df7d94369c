"""`robot-rl eval RUN_OR_BUNDLE [--episodes N] [--backend mujoco|pybullet]`: deterministic evaluation, JSON output.

A bundle (or a run folder's bundle/) is evaluated through `load_bundle` and its contract only; a run without a
bundle, or a checkpoint file, through the learner stored in the checkpoint.
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
    from robot_rl.bench.transfer import InterventionCounter, check_bundle_env, use_bundle_safety
    from robot_rl.errors import ConfigError
    from robot_rl.runner import evaluate, make_env

    if args.episodes < 1:
        raise ConfigError(f"--episodes must be >= 1, got {args.episodes}")
    source = Path(args.source)
    bundle_dir = source if (source / "contract.json").is_file() else source / "bundle"
    if (bundle_dir / "contract.json").is_file():
        from robot_rl.bundle import load_bundle

        bundle = load_bundle(bundle_dir, runtime=args.runtime)
        prov = bundle.metadata
        task = prov.get("task")
        if not task:
            raise ConfigError(f"bundle {bundle_dir} does not record its task in contract.json provenance")
        train_cfg = prov.get("config") or {}
        backend = args.backend or str(prov.get("backend", "mujoco")).split()[0]
        overrides = [*train_cfg.get("task_overrides", []), *train_cfg.get("eval_overrides", []), *args.overrides]
        env = make_env(task, args.episodes, args.seed, backend, overrides)
        try:  # robot, joints, rates, action and observation layout must match the engine's robot
            check_bundle_env(bundle.contract, env.contract)
            use_bundle_safety(env, bundle.contract)
        except Exception:
            env.close()
            raise
        policy: Callable[[np.ndarray], np.ndarray] = bundle.act
        what = f"bundle {bundle_dir} ({args.runtime})"
    else:
        import torch

        from robot_rl.runner import find_checkpoint, learner_from_checkpoint, load_checkpoint

        ckpt = find_checkpoint(source)
        cfg, _, ppo = learner_from_checkpoint(load_checkpoint(ckpt))
        task, backend = cfg.task, args.backend or cfg.backend
        env = make_env(task, args.episodes, args.seed, backend,
                       [*cfg.task_overrides, *cfg.eval_overrides, *args.overrides])

        def act(obs: np.ndarray) -> np.ndarray:
            return ppo.act_deterministic(torch.from_numpy(np.asarray(obs, np.float32))).numpy()

        policy = act

        what = f"checkpoint {ckpt}"
    counter = InterventionCounter(env)
    try:
        summary = evaluate(policy, counter, args.episodes, args.seed)
    finally:
        env.close()
    result: dict[str, Any] = {"source": what, "task": task, "backend": backend, **summary,
              "safety_intervention_rate": counter.intervention_rate}
    text = json.dumps(result)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0
