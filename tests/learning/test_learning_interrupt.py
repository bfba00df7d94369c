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
        "max_env_steps=1000000000", "ppo.num_steps=16", "ppo.actor_hidden=[16]", "ppo.critic_hidden=[16]",
        "checkpoint_every=100000", "video=false"]


def test_sigint_saves_checkpoint_and_exports_bundle(tmp_path: Path) -> None:
    run = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "robot_rl.cli", "train", "--no-progress", "--run-dir", str(run),
                             "--set", *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "MUJOCO_GL": "egl"})
    try:
        assert proc.stdout is not None
        for line in proc.stdout:  # the plain log prints the first iteration at once
            if re.search(r"\] it \d+ \|", line):
                break
        else:
            raise AssertionError(f"no iteration logged: {proc.communicate(timeout=60)}")
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, (out, err)
    lines = err.strip().splitlines()
    ckpt_lines = [ln for ln in lines if "checkpoint" in ln and "interrupted at iteration" in ln]
    bundle_lines = [ln for ln in lines if "bundle" in ln and "not evaluated" in ln]
    assert len(ckpt_lines) == 1 and len(bundle_lines) == 1, err
    ckpt = find_checkpoint(run)
    assert str(ckpt) in ckpt_lines[0] and str(run / "bundle") in bundle_lines[0]
    data = load_checkpoint(ckpt)
    iteration = data["iteration"]
    # the last completed iteration: the one the log reported or a later one, never a half-done one
    assert iteration >= 1 and ckpt.name == f"model_{iteration}.pt" and data["env_steps"] == iteration * 4 * 16
    assert f"interrupted at iteration {iteration};" in ckpt_lines[0]
    bundle = load_bundle(run / "bundle")
    assert bundle.metadata["iterations"] == iteration
    _, _, learner = learner_from_checkpoint(data)
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(bundle.act(obs), learner.policy.act(obs), atol=1e-5)
    assert not (run / "eval.json").exists()  # nothing was evaluated, so nothing claims to be
