"""`robot-rl train [--config FILE] [--set key.sub=value ...] [--resume RUN_OR_CKPT]`: train, evaluate, export.

With no arguments: the A1 walking task (MuJoCo) within the default wall-clock budget, learned by PPO; `--set algo=sac`
(or any name in robot_rl.learner.algorithms()) trains with another learner, configured by its section (`sac.*`).

Ctrl-C (SIGINT) ends training after the current iteration: the run's checkpoint and its bundle (not evaluated) are
written, their paths printed, and the command exits 130; a second Ctrl-C aborts at once. Ctrl-C during the final
evaluation or video keeps the checkpoint and exports the bundle too (evaluated if that export was done).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from types import FrameType, TracebackType
from typing import Any

from robot_rl.config import add_config_arguments, from_dict, load_config


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_rl.runner import TrainConfig

    add_config_arguments(parser, TrainConfig, "num_envs=32 ppo.learning_rate=3e-4")
    parser.add_argument("--resume", metavar="RUN_OR_CKPT",
                        help="continue a run folder (latest checkpoint) or a checkpoint file, in its run folder")
    parser.add_argument("--run-dir", type=Path, help="write the run here instead of runs/<task>-<timestamp>")
    parser.add_argument("--no-progress", action="store_true", help="plain log lines instead of a progress bar")


INTERRUPTED = 130
"""Exit code after Ctrl-C (128 + SIGINT, as shells report it)."""


class StopOnInterrupt:
    """While active, the first SIGINT only sets `requested` (training stops after the iteration in progress, whose
    state is then consistent); the handler that was there before takes the next one (a second Ctrl-C aborts)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None

    def __enter__(self) -> StopOnInterrupt:
        if threading.current_thread() is threading.main_thread():  # signals reach the main thread only
            self._previous = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.requested = True
        signal.signal(signal.SIGINT, self._previous)
        # os.write, not print: a handler may run while the main thread is inside a print to the same stream
        os.write(2, b"robot-rl train: interrupted, saving after this iteration (Ctrl-C again to abort)\n")

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)
            self._previous = None


def _interrupted(runner: Any) -> int:
    """After Ctrl-C: the run's bundle (exported now, without evaluation, unless it already was), both paths on one
    line each, and the exit code that says interrupted."""
    evaluated = runner.bundle is not None
    bundle = runner.bundle if evaluated else runner.export({})
    print(f"robot-rl train: interrupted at iteration {runner.iteration}; checkpoint {runner.last_checkpoint}",
          file=sys.stderr, flush=True)
    print(f"robot-rl train: bundle{'' if evaluated else ' (not evaluated)'} {bundle}", file=sys.stderr, flush=True)
    return INTERRUPTED


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
        with StopOnInterrupt() as interrupt:
            runner.train(callback=lambda _runner, _episodes: not interrupt.requested)
        if interrupt.requested:
            return _interrupted(runner)
        try:  # (the line inside: a Ctrl-C that follows it must find the handler below in place)
            print(f"robot-rl train: trained {runner.iteration} iterations (checkpoint {runner.last_checkpoint}); "
                  f"evaluating {cfg.eval_episodes} episodes and exporting the bundle", flush=True)
            metrics = runner.finish()
        except KeyboardInterrupt:  # during evaluation, export or video: the trained policy is kept all the same
            return _interrupted(runner)
    finally:
        runner.close()
    print(json.dumps({"run_dir": str(run_dir), "env_steps": runner.env_steps,
                      "train_minutes": round(runner.wall_s / 60.0, 2), **metrics}))
    return 0
