"""Pick-and-place: the grasp term, the held and grasped-start reset curricula (init.held_fraction,
init.grasped_fraction), the binary gripper, and that the task is solvable in simulation by a scripted grasp (seeded,
no learning)."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.controllers.osc import EndEffectorController
from robot_rl.errors import ConfigError
from robot_rl.runner import task_defaults
from robot_rl.sim import make_vec_env, resolve_config
from robot_rl.sim.manipulation import (
    ArmRewardConfig,
    ManipView,
    r_grasp,
    r_lift_progress,
    r_object_to_goal,
    r_object_to_goal_fine,
)


def _scripted(env, steps: int, start_held: bool) -> list[dict]:
    """Hand over the cube, down, close, then carry the cube to the goal (ee_delta actions)."""
    n = env.num_envs
    phase = np.full(n, 3 if start_held else 0)
    episodes: list[dict] = []
    for _ in range(steps):
        ex = env.get_state().extras
        ee, obj, goal = ex["ee_pos"], ex["object_pos"], ex["goal_pos"]
        above = obj + [0.0, 0.0, 0.05]
        phase[(phase == 0) & (np.linalg.norm(ee[:, :2] - obj[:, :2], axis=1) < 0.01)] = 1
        phase[(phase == 1) & (np.linalg.norm(ee - obj, axis=1) < 0.01)] = 2
        a = np.zeros((n, 4))
        a[:, 3] = np.where(phase >= 2, -1.0, 1.0)
        target = np.where((phase == 0)[:, None], above, obj)
        a[:, :3] = np.clip((target - ee) / 0.03, -1, 1)
        carry = phase >= 3
        a[carry, :3] = np.clip((goal - obj)[carry] / 0.03, -1, 1)
        phase[phase == 2] = 3  # one policy step to close
        _, _, _, _, info = env.step(a)
        episodes += info["episodes"]
    return episodes


def test_a_scripted_grasp_solves_the_randomized_task() -> None:
    env = make_vec_env("panda_pick_place", 8, seed=1, safety=False)
    eps = _scripted(env, env.task.max_episode_steps, start_held=False)
    assert len(eps) == 8 and all(e["success"] and not e["fell"] for e in eps)


def test_held_start_puts_the_cube_between_the_open_fingers() -> None:
    env = make_vec_env("panda_pick_place", 8, seed=2, safety=False, overrides=["init.held_fraction=1.0"])
    s = env.get_state()
    ex = s.extras
    half = env.episode_params["object_size"] * 0.02
    np.testing.assert_allclose(ex["ee_pos"], ex["object_pos"], atol=5e-3)
    np.testing.assert_allclose(ex["object_pos"][:, 2], half, atol=2e-3)  # resting on the table
    assert np.all(s.joint_pos[:, -1] > half)  # fingers just wider than the cube
    assert np.all(s.joint_pos[:, -1] < 0.03)
    # hand pointing down, as the ee_delta controller holds it
    eps = _scripted(env, env.task.max_episode_steps, start_held=True)
    assert len(eps) == 8 and all(e["success"] for e in eps)


def test_held_fraction_mixes_starts_and_zero_is_the_task() -> None:
    def gaps(fraction: float) -> np.ndarray:
        env = make_vec_env("panda_pick_place", 40, seed=3, safety=False, overrides=[f"init.held_fraction={fraction}"])
        ex = env.get_state().extras
        return np.linalg.norm(ex["ee_pos"] - ex["object_pos"], axis=1)

    held = gaps(0.5) < 0.01
    assert 8 <= held.sum() <= 32
    assert not (gaps(0.0) < 0.05).any()  # every episode starts with the hand 10 cm above the table
    # the training defaults' mix: a quarter open at the cube, a quarter squeezed in the air, half the task itself
    env = make_vec_env("panda_pick_place", 80, seed=3, safety=False, overrides=list(task_defaults(
        "panda_pick_place").task_overrides))
    ex = env.get_state().extras
    at_cube = np.linalg.norm(ex["ee_pos"] - ex["object_pos"], axis=1) < 0.01
    up = ex["object_pos"][:, 2] - env.episode_params["object_size"] * 0.02 > 0.015
    assert 10 <= (at_cube & ~up).sum() <= 30 and 10 <= (at_cube & up).sum() <= 30 and not (up & ~at_cube).any()
    with pytest.raises(ConfigError, match="held_fraction"):
        resolve_config("panda_pick_place", overrides=["init.held_fraction=1.5"])


def test_training_uses_held_starts_and_evaluation_does_not() -> None:
    cfg = task_defaults("panda_pick_place")
    train = resolve_config(cfg.task, overrides=list(cfg.task_overrides))
    evaluation = resolve_config(cfg.task, overrides=[*cfg.task_overrides, *cfg.eval_overrides])
    assert train.init.held_fraction > 0 and evaluation.init.held_fraction == 0.0
    assert train.init.grasped_fraction > 0 and evaluation.init.grasped_fraction == 0.0
    assert evaluation.rewards.grasp > 0 and evaluation.control.gripper == "binary"


def test_grasped_start_has_the_cube_squeezed_in_the_air() -> None:
    env = make_vec_env("panda_pick_place", 8, seed=4, safety=False,
                       overrides=["init.grasped_fraction=1.0", "init.grasped_lift=[0.02, 0.03]"])
    s = env.get_state()
    ex = s.extras
    half = env.episode_params["object_size"] * 0.02
    lift = ex["object_pos"][:, 2] - half
    assert np.all((lift >= 0.02 - 1e-9) & (lift <= 0.03 + 1e-9))  # in the air, not on the table
    np.testing.assert_allclose(ex["ee_pos"], ex["object_pos"], atol=1e-3)  # between the fingertips
    np.testing.assert_allclose(s.joint_pos[:, -1], half, atol=1e-6)  # fingers touching the cube's faces

    def lift_after(gripper: float, steps: int = 10) -> np.ndarray:
        env.reset(seed=7)
        a = np.zeros((8, 4))
        a[:, 3] = gripper
        for _ in range(steps):
            env.step(a)
        e = env.get_state().extras
        assert not env.nan_resets
        return e["object_pos"][:, 2] - env.episode_params["object_size"] * 0.02, e

    held, e = lift_after(-1.0)
    assert np.all(held > 0.005) and np.all(np.linalg.norm(e["ee_pos"] - e["object_pos"], axis=1) < 0.01)
    dropped, _ = lift_after(1.0)
    np.testing.assert_allclose(dropped, 0.0, atol=2e-3)  # opening drops it onto the table
    env.reset(seed=7)
    a = np.zeros((8, 4))
    a[:, 2:] = [1.0, -1.0]
    for _ in range(6):
        env.step(a)
    e = env.get_state().extras
    assert np.all(e["object_pos"][:, 2] > 0.08)  # carried up with the hand (from 4-5 cm)
    assert np.all(np.linalg.norm(e["ee_pos"] - e["object_pos"], axis=1) < 0.01)


def test_binary_gripper_closes_fully_on_any_negative_command() -> None:
    kw = dict(arm_joints=1, scale=0.03, damping=0.05, orientation_gain=0.0, target_rot=np.eye(3), gripper_lower=0.0,
              gripper_upper=0.04)
    action = np.array([[0, 0, 0, -1.0], [0, 0, 0, -0.05], [0, 0, 0, 0.05], [0, 0, 0, 1.0], [0, 0, 0, 0.0]])
    jac = np.zeros((5, 6, 1))
    rot = np.tile(np.eye(3), (5, 1, 1))
    q = np.zeros((5, 2))
    binary = EndEffectorController(**kw, gripper_binary=True).targets(action, q, jac, rot)[:, 1]
    continuous = EndEffectorController(**kw).targets(action, q, jac, rot)[:, 1]
    np.testing.assert_allclose(binary, [0.0, 0.0, 0.04, 0.04, 0.04])
    np.testing.assert_allclose(continuous, [0.0, 0.019, 0.021, 0.04, 0.02])
    # in the environment: the finger target is fully closed for a small negative command
    env = make_vec_env("panda_pick_place", 2, seed=0, safety=False)
    env.step(np.array([[0, 0, 0, -0.05], [0, 0, 0, 0.05]]))
    np.testing.assert_allclose(env.control_step.safe[:, -1], [env.task.joint_lower[-1], env.task.joint_upper[-1]])
    assert env.contract.provenance["controller"]["gripper"] == "binary"


def test_goal_kernels_count_only_while_lifted() -> None:
    goal = np.array([[0.5, 0.0, 0.2]] * 3)
    obj = np.array([[0.5, 0.0, 0.02], [0.5, 0.0, 0.15], [0.5, 0.0, 0.2]])
    a = np.zeros((3, 4))
    view = ManipView(ee_pos=obj, goal=goal, object_pos=obj, object_rest_z=np.full(3, 0.02), joint_vel=np.zeros((3, 8)),
                     action=a, last_action=a, policy_action=a, intervened=np.zeros(len(obj), bool),
                     target=obj, distance=np.zeros(len(obj)), carry_only=True)
    c = ArmRewardConfig(goal_distance_scale=0.3, fine_distance_scale=0.05)
    np.testing.assert_allclose(r_object_to_goal(view, c), [0.0, 1 - np.tanh(0.05 / 0.3), 1.0])
    np.testing.assert_allclose(r_object_to_goal_fine(view, c), [0.0, 1 - np.tanh(1.0), 1.0])


def test_held_and_grasped_fractions_are_checked() -> None:
    with pytest.raises(ConfigError, match="grasped_fraction"):
        resolve_config("panda_pick_place", overrides=["init.held_fraction=0.6", "init.grasped_fraction=0.6"])
    with pytest.raises(ConfigError, match="grasped_lift"):
        resolve_config("panda_pick_place", overrides=["init.grasped_lift=[0.05, 0.02]"])


def test_grasp_term_needs_the_cube_between_the_fingers_and_a_closing_gripper() -> None:
    obj = np.array([[0.5, 0.0, 0.02]] * 3)
    ee = obj + np.array([[0.0, 0.0, 0.005], [0.0, 0.0, 0.005], [0.0, 0.0, 0.05]])
    action = np.array([[0, 0, 0, -0.8], [0, 0, 0, -0.2], [0, 0, 0, -1.0]], float)
    view = ManipView(ee_pos=ee, goal=obj, object_pos=obj, object_rest_z=np.full(3, 0.02), joint_vel=np.zeros((3, 8)),
                     action=action, last_action=action, policy_action=action, intervened=np.zeros(3, bool),
                     target=obj, distance=np.zeros(len(obj)), carry_only=True)
    np.testing.assert_array_equal(r_grasp(view, ArmRewardConfig()), [1.0, 0.0, 0.0])


def test_lift_progress_grows_with_height_up_to_the_goal() -> None:
    z = np.array([0.02, 0.03, 0.12, 0.30])
    obj = np.stack([np.full(4, 0.5), np.zeros(4), z], axis=1)
    goal = np.array([[0.5, 0.0, 0.22]] * 4)
    a = np.zeros((4, 4))
    view = ManipView(ee_pos=obj, goal=goal, object_pos=obj, object_rest_z=np.full(4, 0.02), joint_vel=np.zeros((4, 8)),
                     action=a, last_action=a, policy_action=a, intervened=np.zeros(len(obj), bool),
                     target=obj, distance=np.zeros(len(obj)), carry_only=True)
    np.testing.assert_allclose(r_lift_progress(view, ArmRewardConfig()), [0.0, 0.05, 0.5, 1.0])
