"""Training loop on a tiny Gymnasium task: it must improve, be deterministic, checkpoint/resume, export, and turn
bad input into one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.cli import main
from robot_rl.config import load_config
from robot_rl.errors import ConfigError
from robot_rl.evaluation import evaluate
from robot_rl.runner import (
    CheckpointError,
    Runner,
    TrainConfig,
    find_checkpoint,
    learner_from_checkpoint,
    load_checkpoint,
    make_env,
)

PENDULUM = ["task=gym:Pendulum-v1", "task_overrides=[]", "eval_overrides=[]", "num_envs=16", "max_minutes=0",
            "ppo.num_steps=64", "ppo.gamma=0.9",
            "ppo.actor_hidden=[64, 64]", "ppo.critic_hidden=[64, 64]", "ppo.init_noise_std=0.5",
            "ppo.entropy_coef=0.0", "eval_episodes=4", "video=false"]


def _cfg(tmp_path: Path, steps: int, *extra: str) -> TrainConfig:
    return load_config(TrainConfig, None, [*PENDULUM, f"max_env_steps={steps}", f"runs_dir={tmp_path}", *extra])


def _eval(runner: Runner) -> float:
    env = make_env("gym:Pendulum-v1", 4, 777)
    return evaluate(runner.policy(), env, 4, seed=777)["return_mean"]


def test_tiny_training_run_improves(tmp_path):
    runner = Runner(_cfg(tmp_path, 40_960), tmp_path / "run", progress=False)
    before = _eval(runner)
    runner.train()
    after = _eval(runner)
    metrics = runner.finish()
    assert after > before + 300.0, (before, after)  # untrained ~ -1200, trained ~ -400 or better
    run = tmp_path / "run"
    assert json.loads((run / "eval.json").read_text())["return_mean"] == pytest.approx(metrics["return_mean"])
    assert (run / "learning_curve.png").stat().st_size > 1000
    assert (run / "config.yaml").is_file() and list((run / "tb").iterdir())
    from robot_rl.bundle import load_bundle

    bundle = load_bundle(run / "bundle")
    obs = np.random.default_rng(0).normal(size=(5, 3)).astype(np.float32)
    np.testing.assert_allclose(bundle.act(obs), runner.policy()(obs), atol=1e-5)
    assert bundle.metadata["task"] == "gym:Pendulum-v1"
    assert bundle.metadata["metrics"]["return_mean"] == pytest.approx(metrics["return_mean"])


def test_seeded_runs_are_identical(tmp_path):
    params = []
    for name in ("a", "b"):
        runner = Runner(_cfg(tmp_path, 2048), tmp_path / name, progress=False)
        runner.train()
        params.append([p.detach().clone() for p in runner.learner.policy.parameters()])
    assert all(torch.equal(a, b) for a, b in zip(*params))


def test_checkpoint_resume_round_trip(tmp_path, capsys):
    run = tmp_path / "run"
    runner = Runner(_cfg(tmp_path, 2048), run, progress=False)
    runner.train()
    ckpt = find_checkpoint(run)
    assert ckpt.name == "model_2.pt"
    cfg, contract, learner = learner_from_checkpoint(load_checkpoint(ckpt))
    assert cfg == runner.cfg and contract == runner.contract
    for a, b in zip(learner.policy.parameters(), runner.learner.policy.parameters()):
        assert torch.equal(a, b)
    # the running normalizer's statistics, as the actor acts and exports with them
    assert torch.equal(learner.policy.obs_mean, runner.learner.policy.obs_mean)
    assert not list((run / "checkpoints").glob(".*tmp*"))  # atomic write leaves no temporary file

    code = main(["train", "--resume", str(run), "--set", "max_env_steps=4096", "eval_episodes=0", "--no-progress"])
    assert code == 0
    assert find_checkpoint(run).name == "model_4.pt"
    data = load_checkpoint(find_checkpoint(run))
    assert data["env_steps"] == 4096 and data["iteration"] == 4
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    steps = sorted({e.step for e in acc.Scalars("perf/steps_per_s")})
    assert steps == [1024, 2048, 3072, 4096]  # the resumed run appends to the log, keeping the first part
    assert (run / "bundle" / "policy.onnx").is_file()
    assert main(["export", str(run), "--out", str(tmp_path / "exported")]) == 0
    assert (tmp_path / "exported" / "contract.json").is_file()


def test_corrupted_checkpoint_is_one_line_error(tmp_path, capsys):
    run = tmp_path / "run"
    Runner(_cfg(tmp_path, 1024), run, progress=False).train()
    ckpt = find_checkpoint(run)
    data = ckpt.read_bytes()
    ckpt.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(ckpt)
    for argv in (["eval", str(ckpt)], ["export", str(ckpt), "--out", str(tmp_path / "b")],
                 ["train", "--resume", str(ckpt)]):
        capsys.readouterr()
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and "corrupted" in err and str(ckpt) in err
    torch.save({"format": "robot_rl.checkpoint/1", "ppo": {}}, ckpt)
    with pytest.raises(CheckpointError, match="older checkpoint format"):
        load_checkpoint(ckpt)
    ckpt.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="corrupted"):
        load_checkpoint(ckpt)
    with pytest.raises(CheckpointError, match="no checkpoint"):
        find_checkpoint(tmp_path / "empty")


@pytest.mark.parametrize("overrides,msg", [
    (["nope=1"], "unknown key nope"),
    (["num_envs=abc"], "num_envs: expected an integer"),
    (["ppo.lr=1"], "unknown key ppo.lr"),
    (["num_envs=0"], "num_envs must be >= 1"),
    (["max_minutes=0", "max_env_steps=0"], "set a budget"),
    (["max_minutes=-1"], "non-negative"),
    (["task=gym:NoSuchEnv-v0", "task_overrides=[]", "eval_overrides=[]"], "NoSuchEnv"),
    (["task=gym:Pendulum-v1", "task_overrides=[num_threads=2]"], "gym: tasks take no task_overrides"),
    (["task=no_such_task"], "unknown task 'no_such_task'"),
    (["task_overrides=[commands.vx=[1.0, 0.0]]"], "commands.vx"),
    (["ppo.schedule=cosine"], "ppo.schedule"),
])
def test_bad_config_is_one_line_error(overrides, msg, capsys, tmp_path):
    code = main(["train", "--set", *overrides, f"runs_dir={tmp_path}", "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert len(err.splitlines()) == 1 and msg in err, err


def test_config_file_errors(tmp_path):
    bad = tmp_path / "c.yaml"
    bad.write_text("ppo:\n  num_epochs: many\n")
    with pytest.raises(ConfigError, match="ppo.num_epochs: expected an integer"):
        load_config(TrainConfig, bad)
    good = tmp_path / "g.yaml"
    good.write_text("task: gym:Pendulum-v1\ntask_overrides: []\neval_overrides: []\nppo:\n  num_epochs: 3\n")
    cfg = load_config(TrainConfig, good, ["ppo.num_steps=8"])
    assert (cfg.task, cfg.ppo.num_epochs, cfg.ppo.num_steps) == ("gym:Pendulum-v1", 3, 8)


def test_video_of_the_a1_task(tmp_path):
    import cv2

    from robot_rl.video import record_video

    env = make_env("a1_walk", 1, 0, overrides=[], render=True)
    try:
        path = record_video(env, lambda obs: np.zeros((1, env.act_dim)), tmp_path / "v.mp4", seconds=0.2, fps=50.0,
                            width=160, height=120)
    finally:
        env.close()
    cap = cv2.VideoCapture(str(path))
    frames = 0
    while cap.read()[0]:
        frames += 1
    assert frames == 10


def test_failed_checkpoint_save_keeps_the_previous_one(tmp_path):
    """A save that fails (here: a folder squats on the new checkpoint's name) leaves the previous checkpoint in
    place and loadable (it is pruned only after the new one is durable) and no temporary file behind."""
    run = tmp_path / "run"

    def squat(runner: Runner, episodes: list) -> bool:
        (run / "checkpoints" / f"model_{runner.iteration + 1}.pt").mkdir(exist_ok=True)
        return True

    runner = Runner(_cfg(tmp_path, 2048, "checkpoint_every=1", "keep_checkpoints=1"), run, progress=False)
    with pytest.raises(IsADirectoryError):
        runner.train(callback=squat)
    files = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert files == ["model_1.pt", "model_2.pt"] and (run / "checkpoints" / "model_2.pt").is_dir(), files
    assert load_checkpoint(run / "checkpoints" / "model_1.pt")["iteration"] == 1


def _threads() -> int:
    """Threads of this process, native ones included (mujoco.rollout's pool is C++ threads)."""
    import os

    return len(os.listdir("/proc/self/task"))


def test_refused_resume_leaves_no_environment_running(tmp_path):
    """A checkpoint the runner refuses closes the environment it had built: its physics threads stop at once,
    not when the garbage collector finds the half-built runner (the exception's traceback keeps it alive)."""
    from robot_rl.runner import task_defaults

    cfg = load_config(TrainConfig, None, ["num_envs=2", "max_env_steps=100", "video=false"],
                      base=task_defaults("a1_walk"))
    assert "num_threads=2" in cfg.task_overrides  # a rollout pool with threads of its own
    first = Runner(cfg, tmp_path / "a", progress=False)
    running = _threads()
    payload = {**first.checkpoint_payload(), "learner": {}}
    first.close()
    before = _threads()
    assert before <= running - 2  # closing an environment stops its pool's two threads
    with pytest.raises(CheckpointError, match="does not fit the learner") as refused:
        Runner(cfg, tmp_path / "b", checkpoint=payload, progress=False)
    assert _threads() == before, refused.value


def test_checkpoints_pruned_to_the_newest_kept(tmp_path):
    """keep_checkpoints=4 with a checkpoint every iteration: after iteration k the folder holds iterations
    max(1, k-3) .. k, the new one always among them."""
    run = tmp_path / "run"
    seen: list[list[int]] = []

    def record(runner: Runner, episodes: list) -> bool:
        seen.append(sorted(int(p.stem.split("_")[1]) for p in (run / "checkpoints").glob("model_*.pt")))
        return True

    Runner(_cfg(tmp_path, 6 * 1024, "checkpoint_every=1", "keep_checkpoints=4"), run, progress=False).train(record)
    assert seen == [list(range(max(1, k - 3), k + 1)) for k in range(1, 7)], seen
