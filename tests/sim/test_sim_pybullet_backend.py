"""PyBullet backend against MuJoCo: same contract and observations, same joint order, signs, units and frames
(trajectories under the same PD targets), randomization mapped into PyBullet, every task runs."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.sim import make_robot_sim, make_vec_env, task_names
from robot_rl.state import projected_gravity

QUIET = ["randomization.enabled=false", "init.joint_noise=0.0"]


def _agree(ref: np.ndarray, other: np.ndarray, start: np.ndarray, rel: float, atol: float) -> bool:
    """Every joint's trajectory within rel * (its motion) + atol of the reference."""
    motion = np.abs(ref - start).max(axis=0)
    return bool(np.all(np.abs(ref - other).max(axis=0) <= rel * motion + atol))


@pytest.mark.parametrize("task", task_names())
def test_every_task_runs_on_pybullet_with_the_same_contract(task: str) -> None:
    ref = make_vec_env(task, 2, seed=0, safety=False)
    env = make_vec_env(task, 2, seed=0, backend="pybullet", safety=False)
    assert env.contract.to_dict() == ref.contract.to_dict()
    np.testing.assert_array_equal(env.reset(seed=4), ref.reset(seed=4))  # same reset code, same observation
    rng = np.random.default_rng(0)
    for _ in range(5):
        obs, rew, term, trunc, info = env.step(rng.uniform(-1, 1, (2, env.act_dim)))
        assert np.all(np.isfinite(obs)) and np.all(np.isfinite(rew))
    assert set(info["reward_terms"]) == set(ref.step(np.zeros((2, ref.act_dim)))[4]["reward_terms"])
    env.close()
    ref.close()


def test_arm_joint_trajectories_agree_under_the_same_targets() -> None:
    trajs = {}
    a = np.array([[0.6, -0.4, 0.5, 0.3, -0.5, 0.4, -0.6, -1.0]])
    for backend in ("mujoco", "pybullet"):
        env = make_vec_env("panda_reach", 1, seed=0, backend=backend, safety=False,
                           overrides=[*QUIET, "control.action=joint_position_delta"])
        start = env.get_state().joint_pos[0].copy()
        traj = []
        for k in range(10):
            env.step(a if k < 5 else -a)
            traj.append(env.get_state().joint_pos[0].copy())
        trajs[backend] = np.array(traj)
        env.close()
    ref, other = trajs["mujoco"], trajs["pybullet"]
    assert _agree(ref[:, :7], other[:, :7], start[:7], rel=0.1, atol=2e-3)
    assert abs(ref[-1, 7] - other[-1, 7]) < 0.01  # gripper (MuJoCo's soft joint limit vs PyBullet's stop)
    swapped = other[:, [1, 0, 2, 3, 4, 5, 6]]
    assert not _agree(ref[:, :7], swapped, start[:7], rel=0.1, atol=2e-3)  # a swapped joint is caught
    assert not _agree(ref[:, :7], 2 * start[:7] - other[:, :7], start[:7], rel=0.1, atol=2e-3)  # a sign, too


def _airborne(backend: str, limp: bool = False) -> tuple[np.ndarray, np.ndarray, list]:  # type: ignore[type-arg]
    robot = make_robot_sim("a1", backend=backend)
    if limp:
        robot.set_pd(0.0, 0.0)
    robot.reset()
    d = robot.data
    d.qpos[2] = 1.5
    quat = np.zeros(4)
    mujoco.mju_euler2Quat(quat, np.array([0.3, -0.2, 0.5]), "xyz")
    d.qpos[3:7] = quat
    d.qvel[3:6] = [0.5, -0.3, 0.2]
    start = d.qpos[7:19].copy()
    # a different target offset on every joint, alternating in sign, no two legs alike
    targets = start + np.array([0.3, -0.2, 0.25, -0.15, 0.3, -0.25, 0.2, -0.3, 0.15, -0.25, 0.3, -0.2])
    states = [robot.step(targets) for _ in range(20)]
    return start, np.array([s.joint_pos for s in states]), states


def test_a1_in_the_air_joints_imu_and_frames_agree() -> None:
    start, ref, ref_states = _airborne("mujoco")
    _, other, states = _airborne("pybullet")
    # contact-free: only armature (MuJoCo 0.01 kg m^2, PyBullet none) separates the engines
    assert _agree(ref, other, start, rel=0.3, atol=0.01)
    assert not _agree(ref, other[:, [3, 4, 5, 0, 1, 2, 6, 7, 8, 9, 10, 11]], start, rel=0.3, atol=0.01)
    g_ref, g = projected_gravity(ref_states[-1].base_quat), projected_gravity(states[-1].base_quat)
    np.testing.assert_allclose(g, g_ref, atol=0.02)
    assert np.linalg.norm(g[:2]) > 0.3  # tilted: gravity has body-frame x and y components
    np.testing.assert_allclose(states[-1].base_pos, ref_states[-1].base_pos, atol=2e-3)  # free fall, same units
    # limp joints: a tumbling body keeps its body-frame angular velocity; gyro and accelerometer frames agree
    _, _, limp_ref = _airborne("mujoco", limp=True)
    _, _, limp = _airborne("pybullet", limp=True)
    for k in (0, 19):
        np.testing.assert_allclose(limp[k].base_ang_vel, limp_ref[k].base_ang_vel, atol=0.03)
        np.testing.assert_allclose(projected_gravity(limp[k].base_quat), projected_gravity(limp_ref[k].base_quat),
                                   atol=0.01)
    assert np.linalg.norm(limp[-1].base_lin_acc) < 0.5  # accelerometer reads ~0 in free fall


def test_a1_stands_on_pybullet_with_feet_in_contact() -> None:
    env = make_vec_env("a1_walk", 2, seed=0, backend="pybullet", safety=False,
                       overrides=[*QUIET, "init.base_velocity=0.0"])
    for _ in range(50):
        _, _, term, _, _ = env.step(np.zeros((2, 12)))
        assert not term.any()
    s = env.get_state()
    assert np.all((s.base_pos[:, 2] > 0.24) & (s.base_pos[:, 2] < 0.32))
    assert s.contacts.all()
    np.testing.assert_allclose(projected_gravity(s.base_quat)[:, 2], -1.0, atol=0.02)
    env.close()


def test_randomization_is_mapped_into_pybullet() -> None:
    env = make_vec_env("a1_walk", 3, seed=2, backend="pybullet", safety=False)
    env.step(np.zeros((3, 12)))  # parameters reach PyBullet on the first physics call after a reset
    p = env.episode_params
    for i, world in enumerate(env.engine.worlds):  # noqa: SLF001 - inspecting the engine
        c = world.c
        assert c.getDynamicsInfo(world.statics[0], -1)[1] == pytest.approx(p["friction"][i])
        assert c.getDynamicsInfo(world.robot, -1)[0] == pytest.approx(world.base_mass0 + p["added_mass"][i])
    env.close()
    env = make_vec_env("panda_push", 3, seed=2, backend="pybullet", safety=False)
    env.step(np.zeros((3, 4)))
    p = env.episode_params
    nominal = env.task.model
    for i, world in enumerate(env.engine.worlds):  # noqa: SLF001
        obj = world.objects[0]
        assert world.c.getDynamicsInfo(obj, -1)[0] == pytest.approx(nominal.body("object").mass[0]
                                                                     * p["object_mass"][i])
        assert world.c.getDynamicsInfo(obj, -1)[1] == pytest.approx(p["object_friction"][i])
        half = np.asarray(world.c.getCollisionShapeData(obj, -1)[0][3]) / 2
        np.testing.assert_allclose(half, nominal.geom("object").size * p["object_size"][i], rtol=1e-6)
    env.close()


def test_scripted_reach_succeeds_on_pybullet() -> None:
    env = make_vec_env("panda_reach", 4, seed=3, backend="pybullet", safety=False)
    episodes: list[dict] = []
    for _ in range(env.task.max_episode_steps):
        ex = env.get_state().extras
        a = np.zeros((4, 4))
        a[:, :3] = np.clip((ex["goal_pos"] - ex["ee_pos"]) / env.contract.action.scale, -1, 1)
        episodes += env.step(a)[4]["episodes"]
    assert len(episodes) == 4 and all(e["success"] for e in episodes), episodes
    env.close()


def test_unknown_backend_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown backend 'bullet'"):
        make_vec_env("panda_reach", 1, seed=0, backend="bullet")
