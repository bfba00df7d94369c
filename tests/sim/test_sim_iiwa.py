"""iiwa_reach: a task family member added as one robot folder plus its task module (sim/robots/iiwa), with no edit
to the environment core, the registry or the runner. It builds and steps on both engines, a scripted end-effector
controller solves it on both, and `robot-rl train --set task=iiwa_reach` trains, exports and evaluates it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.sim import make_vec_env, task_names


@pytest.mark.parametrize("backend", ["mujoco", "pybullet"])
def test_iiwa_reach_steps_and_a_scripted_reach_succeeds(backend: str) -> None:
    assert "iiwa_reach" in task_names()
    env = make_vec_env("iiwa_reach", 4, seed=0, backend=backend)
    assert env.act_dim == 3 and env.contract.robot == "iiwa" and env.contract.num_joints == 7  # no gripper
    episodes: list[dict] = []
    for _ in range(env.task.max_episode_steps):
        ex = env.get_state().extras
        action = np.clip((ex["goal_pos"] - ex["ee_pos"]) / env.contract.action.scale, -1, 1)
        obs, reward, _, _, info = env.step(action)
        assert np.all(np.isfinite(obs)) and np.all(np.isfinite(reward)) and info["nan_resets"] == 0
        episodes += info["episodes"]
    env.close()
    assert len(episodes) == 4
    assert all(e["success"] and e["final_distance"] < 0.02 for e in episodes), episodes


def test_iiwa_reach_trains_from_the_command_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = tmp_path / "run"
    assert main(["train", "--set", "task=iiwa_reach", "num_envs=2", "max_minutes=0", "max_env_steps=96",
                 "eval_episodes=1", "video=false", "--run-dir", str(run), "--no-progress"]) == 0
    summary = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert summary["env_steps"] >= 96
    assert main(["eval", str(run), "--episodes", "1"]) == 0
