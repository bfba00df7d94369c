"""`robot-rl export RUN_OR_CKPT --out DIR`: write the policy bundle of a checkpoint (no simulator needed)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

CHECKPOINT_KEYS = ("config", "contract", "learner", "env_steps", "wall_s", "iteration")
"""What export reads from a checkpoint: the learner and its config and contract, and the provenance figures."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="RUN_OR_CKPT", help="run folder (latest checkpoint) or checkpoint file")
    parser.add_argument("--out", type=Path, required=True, help="bundle folder to write")


def run(args: argparse.Namespace) -> int:
    from robot_rl.config import to_dict
    from robot_rl.runner import (
        CheckpointError,
        export_learner,
        find_checkpoint,
        learner_from_checkpoint,
        load_checkpoint,
    )

    ckpt = find_checkpoint(args.source)
    data = load_checkpoint(ckpt)
    missing = [k for k in CHECKPOINT_KEYS if k not in data]
    if missing:
        raise CheckpointError(f"{ckpt}: incomplete robot_rl checkpoint (no {', '.join(missing)})")
    cfg, contract, ppo = learner_from_checkpoint(data)
    run_dir = ckpt.parent.parent if ckpt.parent.name == "checkpoints" else ckpt.parent
    metrics: dict = {}
    eval_file = run_dir / "eval.json"
    if eval_file.is_file():
        metrics = json.loads(eval_file.read_text())
    provenance = {"task": cfg.task, "backend": cfg.backend, "config": to_dict(cfg), "checkpoint": str(ckpt),
                  "env_steps": int(data["env_steps"]), "train_minutes": round(float(data["wall_s"]) / 60.0, 3),
                  "iterations": int(data["iteration"])}
    out = export_learner(args.out, ppo, contract, provenance, metrics)
    print(f"robot-rl export: wrote {out} from {ckpt}")
    return 0
