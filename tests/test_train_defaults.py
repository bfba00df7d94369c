"""Every registered task brings train defaults that form a valid TrainConfig, and `robot-rl train` applies them under
the user's overrides (a task picked with --set gets its own defaults, not the A1's)."""

from __future__ import annotations

import json

import pytest

from robot_rl.cli import main
from robot_rl.config import load_config
from robot_rl.runner import TrainConfig, task_defaults
from robot_rl.sim import task_names


@pytest.mark.parametrize("task", task_names())
def test_task_defaults_are_valid(task: str) -> None:
    cfg = task_defaults(task)
    assert cfg.task == task
    load_config(TrainConfig, None, ["num_envs=2"], base=cfg)  # still a valid base for user overrides


def test_user_overrides_win_over_task_defaults() -> None:
    push = task_defaults("panda_push")
    assert push.num_envs == 64 and push.eval_overrides == []
    cfg = load_config(TrainConfig, None, ["num_envs=3"], base=push)
    assert cfg.num_envs == 3 and cfg.max_minutes == push.max_minutes


@pytest.mark.parametrize("task", ["panda_reach", "panda_pick_place"])
def test_train_another_task_from_the_command_line(task: str, tmp_path, capsys) -> None:
    rc = main(["train", "--no-progress", "--run-dir", str(tmp_path / "run"), "--set", f"task={task}", "num_envs=2",
               "max_env_steps=200", "eval_episodes=1", "video=false", "ppo.num_steps=8"])
    assert rc == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["env_steps"] >= 200
    assert (tmp_path / "run" / "bundle" / "contract.json").is_file()
