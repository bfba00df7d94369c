"""Manipulation: the Panda model from the pybullet_data URDF, the three tasks, both action spaces, success criteria,
randomization, bad input, and the end-effector controller's math."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robot_rl.controllers.osc import EndEffectorController, damped_least_squares, orientation_error
from robot_rl.errors import AssetError, ConfigError
from robot_rl.sim import make_vec_env
from robot_rl.sim.arm_task import PickPlaceTask
from robot_rl.sim.robots.panda import model as panda_model
from robot_rl.sim.robots.panda.pick_place import PandaPickPlaceConfig
from robot_rl.sim.robots.panda.robot import panda_robot

QUIET = ["randomization.enabled=false", "init.joint_noise=0.0"]


def test_model_from_urdf_holds_home_pose_under_gravity_compensation() -> None:
    m = panda_model.build_model()
    assert [m.joint(j).name for j in panda_model.JOINT_NAMES] == panda_model.JOINT_NAMES
    assert m.nu == 8 and m.neq == 1  # finger 2 coupled to finger 1 (URDF mimic)
    np.testing.assert_allclose(m.actuator_forcerange[:, 1], [87, 87, 87, 87, 12, 12, 12, 20])
    d = mujoco.MjData(m)
    mujoco.mj_resetDataKeyframe(m, d, m.key("home").id)
    for _ in range(400):
        mujoco.mj_step(m, d)
    q = d.qpos[[m.jnt_qposadr[m.joint(j).id] for j in panda_model.JOINT_NAMES]]
    np.testing.assert_allclose(q, panda_model.HOME, atol=2e-3)
    # the hand points down at the home pose
    assert d.site_xmat[m.site("ee").id].reshape(3, 3)[2, 2] < -0.99


def test_missing_mesh_is_an_asset_error_naming_the_file(tmp_path: Path) -> None:
    src = panda_model.urdf_path()
    bad = tmp_path / "panda.urdf"
    bad.write_text(src.read_text().replace("package://meshes/collision/link3.obj", "package://meshes/nope.obj"))
    (tmp_path / "meshes").symlink_to(src.parent / "meshes")
    with pytest.raises(AssetError, match="nope.obj"):
        panda_model.build_spec(urdf=bad)


def test_pick_place_needs_a_gripper() -> None:
    arm_only = dataclasses.replace(panda_robot(), joint_names=list(panda_model.ARM_JOINTS))
    with pytest.raises(ConfigError, match="no gripper"):
        PickPlaceTask("panda_pick_place", arm_only, PandaPickPlaceConfig())
    with pytest.raises(ConfigError, match="'a1' is not an arm"):
        make_vec_env("panda_pick_place", 1, seed=0, overrides=["robot=a1"])
    with pytest.raises(ConfigError, match="init.arm_pose has 2 values for 7 arm joints"):
        make_vec_env("panda_push", 1, seed=0, overrides=["init.arm_pose=[0.0, 0.1]"])


@pytest.mark.parametrize("action", ["ee_delta", "joint_position_delta"])
def test_action_spaces_are_recorded_in_the_contract(action: str) -> None:
    env = make_vec_env("panda_push", 2, seed=0, safety=False, overrides=[f"control.action={action}"])
    c = env.contract
    assert c.action.type == action and c.action.gripper
    assert env.act_dim == (4 if action == "ee_delta" else 8) == c.act_dim
    names = [t.name for t in c.obs_terms]
    assert {"extra.object_pos", "extra.object_to_goal", "extra.ee_to_object"} <= set(names)
    obs = env.reset(seed=0)
    state = env.get_state()
    # observations come from RobotState.extras through the contract's observer
    fresh = c.make_observer((2,))(state, np.zeros((2, 0)), np.zeros((2, env.act_dim)))
    np.testing.assert_allclose(obs, fresh, atol=0.05)  # obs carries sensor noise
    env.close()


def test_joint_delta_targets_follow_the_contract() -> None:
    env = make_vec_env("panda_reach", 1, seed=0, safety=False,
                       overrides=[*QUIET, "control.action=joint_position_delta"])
    q0 = env.get_state().joint_pos[0].copy()
    a = np.array([[0.5, -0.5, 0.5, 0.5, -0.5, 0.5, -0.5, -1.0]])
    for _ in range(4):
        env.step(a)
    q = env.get_state().joint_pos[0]
    # the six stiff joints move the commanded way (joint 7's 50 N m/rad loses against the wrist's coupling)
    assert np.all(np.sign(q - q0)[:6] == np.sign(a[0, :6]))
    assert -1e-3 < q[7] < 0.01  # gripper closed, target clipped to the joint range


def _scripted_reach(env, steps: int) -> list[dict]:  # type: ignore[no-untyped-def]
    episodes: list[dict] = []
    for _ in range(steps):
        ex = env.get_state().extras
        a = np.zeros((env.num_envs, 4))
        a[:, :3] = np.clip((ex["goal_pos"] - ex["ee_pos"]) / env.contract.action.scale, -1, 1)
        episodes += env.step(a)[4]["episodes"]
    return episodes


def test_reach_scripted_osc_succeeds_and_random_does_not() -> None:
    env = make_vec_env("panda_reach", 8, seed=3, safety=False)
    episodes = _scripted_reach(env, env.task.max_episode_steps)
    assert len(episodes) == 8
    assert all(e["success"] and e["final_distance"] < 0.03 for e in episodes), episodes
    rng = np.random.default_rng(0)
    env.reset(seed=3)
    random_eps: list[dict] = []
    for _ in range(env.task.max_episode_steps):
        random_eps += env.step(rng.uniform(-1, 1, (8, 4)))[4]["episodes"]
    assert sum(e["success"] for e in random_eps) <= 1


def test_osc_holds_the_hand_pointing_down() -> None:
    env = make_vec_env("panda_push", 2, seed=0, safety=False, overrides=[*QUIET, "init.arm_pose=[]"])
    for k in range(25):
        env.step(np.array([[0.5, 0.5, -1.0, 1.0], [-0.5, -0.5, -1.0, -1.0]]) if k < 15 else np.zeros((2, 4)))
        rot = env.task.sense().rot  # the controller's own view of the hand
        assert np.all(rot[:, 2, 2] < -0.95)  # tilts less than 18 degrees while moving fast
    assert np.all(rot[:, 2, 2] < -0.99)  # and points down again once it stops
    ee = env.get_state().extras["ee_pos"]
    assert np.all(ee[:, 2] < 0.35)  # moved down from 0.485 m
    assert ee[0, 1] > 0.05 > -0.05 > ee[1, 1]  # and sideways, each its own way


def test_push_rewards_and_success() -> None:
    env = make_vec_env("panda_push", 4, seed=0, safety=False, overrides=QUIET)
    _, _, _, _, info = env.step(np.zeros((4, 4)))
    assert set(info["reward_terms"]) == {"push_pose", "object_to_goal", "success", "action_rate",
                                         "joint_vel", "safety_intervention"}
    # teleport the cube onto the goal: the success term fires and the episode records success
    env.physics[:, env.task._obj_q.start:env.task._obj_q.start + 2] = env.task._goal[:, :2]  # noqa: SLF001
    _, reward, _, _, info = env.step(np.zeros((4, 4)))
    assert np.all(info["reward_terms"]["success"] > 0) and np.all(reward > 0.1 * env.policy_dt)
    env2 = make_vec_env("panda_push", 2, seed=0, safety=False, overrides=[*QUIET, "termination.episode_length_s=0.1"])
    env2.physics[:, env2.task._obj_q.start:env2.task._obj_q.start + 2] = env2.task._goal[:, :2]  # noqa: SLF001
    eps = env2.step(np.zeros((2, 4)))[4]["episodes"] + env2.step(np.zeros((2, 4)))[4]["episodes"]
    assert len(eps) == 2 and all(e["success"] for e in eps)


def test_cube_off_the_table_terminates() -> None:
    env = make_vec_env("panda_push", 2, seed=0, safety=False, overrides=QUIET)
    env.physics[0, env.task._obj_q.start:env.task._obj_q.start + 3] = [1.5, 0.0, 0.3]  # noqa: SLF001 - beyond table
    for _ in range(10):
        _, _, term, _, info = env.step(np.zeros((2, 4)))
        if term.any():
            break
    assert term[0] and not term[1] and info["episodes"][0]["fell"]


def test_randomization_reaches_the_model() -> None:
    env = make_vec_env("panda_pick_place", 6, seed=1, safety=False)
    p = env.episode_params
    nom = env.task.model
    g = nom.geom("object").id
    b = nom.body("object").id
    sizes = np.array([env.model(i).geom_size[g, 0] for i in range(6)])
    np.testing.assert_allclose(sizes, nom.geom_size[g, 0] * p["object_size"])
    np.testing.assert_allclose([env.model(i).body_mass[b] for i in range(6)], nom.body_mass[b] * p["object_mass"])
    np.testing.assert_allclose([env.model(i).geom_friction[g, 0] for i in range(6)], p["object_friction"])
    assert len(set(np.round(sizes, 6))) == 6 and p["latency_steps"].max() <= 2
    # the cube rests on the table at its own size
    np.testing.assert_allclose(env.get_state().extras["object_pos"][:, 2], sizes, atol=2e-3)


def test_osc_math() -> None:
    rot = np.eye(3)
    target = np.array([[1.0, 0, 0], [0, np.cos(0.1), -np.sin(0.1)], [0, np.sin(0.1), np.cos(0.1)]])
    err = orientation_error(rot[None], target)[0]
    np.testing.assert_allclose(err, [np.sin(0.1), 0, 0], atol=1e-9)  # rotate +x by 0.1 rad to reach target
    jac = np.array([[[1.0, 0.0], [0.0, 2.0]]])
    np.testing.assert_allclose(damped_least_squares(jac, np.array([[1.0, 1.0]]), 0.0), [[1.0, 0.5]])
    osc = EndEffectorController(arm_joints=2, scale=0.1, damping=1e-6, orientation_gain=0.0, target_rot=np.eye(3),
                                gripper_lower=0.0, gripper_upper=0.04)
    jac6 = np.zeros((1, 6, 2))
    jac6[0, 0, 0], jac6[0, 1, 1] = 1.0, 1.0
    q = np.array([[0.2, -0.1, 0.02]])
    t = osc.targets(np.array([[1.0, -0.5, 0.0, -1.0]]), q, jac6, np.eye(3)[None])
    np.testing.assert_allclose(t, [[0.3, -0.15, 0.0]], atol=1e-6)
    np.testing.assert_allclose(osc.action_of(t, q, jac6), [[1.0, -0.5, 0.0, -1.0]], atol=1e-5)


def test_pushing_a_randomized_cube_stays_physical() -> None:
    """Regression: a lighter cube without recomputed constraint scaling (mj_setConst) was launched at 10-300 m/s."""
    env = make_vec_env("panda_push", 8, seed=0, safety=False,
                       overrides=["randomization.object_mass.low=0.5", "randomization.object_mass.high=0.6"])
    phase = np.zeros(8, int)
    top = 0.0
    for _ in range(60):
        ex = env.get_state().extras
        obj, goal, ee = ex["object_pos"], ex["goal_pos"], ex["ee_pos"]
        away = goal[:, :2] - obj[:, :2]
        away /= np.linalg.norm(away, axis=1, keepdims=True)
        behind = obj.copy()
        behind[:, :2] -= away * 0.055
        high = behind.copy()
        high[:, 2] = 0.08
        push = goal.copy()
        push[:, :2] += away * 0.03
        push[:, 2] = obj[:, 2]
        phase[(phase == 0) & (np.linalg.norm(ee[:, :2] - high[:, :2], axis=1) < 0.01)] = 1
        phase[(phase == 1) & (ee[:, 2] < obj[:, 2] + 0.01)] = 2
        target = np.where((phase == 0)[:, None], high, np.where((phase == 1)[:, None], behind, push))
        a = np.zeros((8, 4))
        a[:, :3] = np.clip((target - ee) / env.contract.action.scale, -1, 1) * np.where(phase == 2, 0.5, 1.0)[:, None]
        a[:, 3] = -1.0
        env.step(a)
        top = max(top, float(np.linalg.norm(env.get_state().extras["object_vel"], axis=1).max()))
    assert (phase == 2).sum() >= 4  # most envs reached the pushing phase
    assert top < 2.0


def test_nan_resets_is_the_count_of_this_step(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """info["nan_resets"] counts this step's restored worlds in the arm env too (it reported a running total)."""
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its instability warning to ./MUJOCO_LOG.TXT
    env = make_vec_env("panda_reach", 3, seed=0, safety=False, overrides=QUIET)
    action = np.zeros((3, 4))
    action[1] = np.nan  # a policy gone bad: NaN targets blow world 1 up
    _, rew, term, _, info = env.step(action)
    assert info["nan_resets"] == 1 and env.nan_resets == 1
    assert term[1] and not term[0] and rew[1] == 0.0 and info["episodes"][0]["unstable"]
    _, _, _, _, info = env.step(np.zeros((3, 4)))
    assert info["nan_resets"] == 0 and env.nan_resets == 1
