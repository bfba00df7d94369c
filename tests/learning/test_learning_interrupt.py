"""Ctrl-C during `robot-rl train` loses nothing: the run's checkpoint of the last completed iteration and a loadable
bundle are written, both paths are printed, and the exit code says interrupted (130)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np

from robot_rl.bundle import load_bundle
from robot_rl.runner import find_checkpoint, learner_from_checkpoint, load_checkpoint

TINY = ["task=gym:Pendulum-v1", "task_overrides=[]", "eval_overrides=[]", "num_envs=4", "max_minutes=0",
        "ppo.num_steps=16", "ppo.actor_hidden=[16]", "ppo.critic_hidden=[16]", "checkpoint_every=100000",
        "video=false"]


def _interrupt_when(run: Path, pattern: str, *settings: str) -> tuple[int, str]:
    """`robot-rl train` on the tiny task, SIGINT once a stdout line matches `pattern`; (exit code, stderr)."""
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "train", "--no-progress", "--run-dir", str(run),
                             "--set", *TINY, *settings], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MUJOCO_GL": "egl"})
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            if re.search(pattern, line):
                break
        else:
            raise AssertionError(f"no line matched {pattern!r}: {proc.communicate(timeout=60)}")
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return proc.returncode, err


def _reported(err: str, run: Path) -> int:
    """The iteration of the checkpoint the interrupted run reported, after checking both lines and both files."""
    lines = err.strip().splitlines()
    ckpt_lines = [ln for ln in lines if "checkpoint" in ln and "interrupted at iteration" in ln]
    bundle_lines = [ln for ln in lines if "bundle" in ln and "not evaluated" in ln]
    assert len(ckpt_lines) == 1 and len(bundle_lines) == 1, err
    ckpt = find_checkpoint(run)
    assert str(ckpt) in ckpt_lines[0] and str(run / "bundle") in bundle_lines[0]
    data = load_checkpoint(ckpt)
    iteration = int(data["iteration"])
    assert iteration >= 1 and ckpt.name == f"model_{iteration}.pt" and data["env_steps"] == iteration * 4 * 16
    assert f"interrupted at iteration {iteration};" in ckpt_lines[0]
    bundle = load_bundle(run / "bundle")
    assert bundle.metadata["iterations"] == iteration
    _, _, learner = learner_from_checkpoint(data)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(bundle.act(obs), learner.policy.act(obs), atol=1e-5)
    assert not (run / "eval.json").exists()  # nothing was evaluated, so nothing claims to be
    return iteration


def test_sigint_saves_checkpoint_and_exports_bundle(tmp_path: Path) -> None:
    run = tmp_path / "run"
    # the plain log prints the first iteration at once; the budget would last for hours
    code, err = _interrupt_when(run, r"\] it \d+ \|", "max_env_steps=1000000000")
    assert code == 130, err
    _reported(err, run)  # the last completed iteration: the logged one or a later one, never a half-done one


def test_sigint_during_evaluation_keeps_the_trained_policy(tmp_path: Path) -> None:
    """Ctrl-C in the final evaluation (3000 episodes here: it outlasts the signal's way) still exports the bundle."""
    run = tmp_path / "run"
    code, err = _interrupt_when(run, r"evaluating \d+ episodes", "max_env_steps=128", "eval_episodes=3000")
    assert code == 130, err
    assert _reported(err, run) == 2
