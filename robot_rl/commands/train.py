"""`robot-rl train [--config FILE] [--set key.sub=value ...] [--resume RUN_OR_CKPT]`: train, evaluate, export.

With no arguments: the A1 walking task (MuJoCo) within the default wall-clock budget, learned by PPO; `--set algo=sac`
(or any name in robot_rl.learner.algorithms()) trains with another learner, configured by its section (`sac.*`).
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

from robot_rl.config import add_config_arguments, from_dict, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_rl.runner import TrainConfig

    add_config_arguments(parser, TrainConfig, "num_envs=32 ppo.learning_rate=3e-4")
    parser.add_argument("--resume", metavar="RUN_OR_CKPT",
                        help="continue a run folder (latest checkpoint) or a checkpoint file, in its run folder")
    parser.add_argument("--run-dir", type=Path, help="write the run here instead of runs/<task>-<timestamp>")
    parser.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")


def run(args: argparse.Namespace) -> int:
    os.environ.setdefault("MUJOCO_GL", "egl")
    from robot_rl.runner import Runner, TrainConfig, find_checkpoint, load_checkpoint, new_run_dir, task_defaults

    checkpoint = None
    base = None
    run_dir = args.run_dir
    if args.resume:
        ckpt_path = find_checkpoint(args.resume)
        checkpoint = load_checkpoint(ckpt_path)
        base = from_dict(TrainConfig, checkpoint["config"])
        if run_dir is None:
            run_dir = ckpt_path.parent.parent if ckpt_path.parent.name == "checkpoints" else ckpt_path.parent
    if base is None:
        # the task (from the file or --set) brings its measured defaults; the user's file and --set go on top
        task = load_config(TrainConfig, args.config, args.overrides).task
        base = task_defaults(task)
    cfg = load_config(TrainConfig, args.config, args.overrides, base=base)
    if run_dir is None:
        run_dir = new_run_dir(cfg)
    runner = Runner(cfg, run_dir, checkpoint=checkpoint, progress=not args.no_progress)
    try:
        print(f"robot-rl train: {cfg.task} ({cfg.backend}), {cfg.num_envs} envs, run folder {run_dir}", flush=True)
        runner.train()
        metrics = runner.finish()
    finally:
        runner.close()
    print(json.dumps({"run_dir": str(run_dir), "env_steps": runner.env_steps,
                      "train_minutes": round(runner.wall_s / 60.0, 2), **metrics}))
    return 0
