"""The A1 MuJoCo model built from pybullet_data's URDF: structure, actuator law, sensors, standing, assets."""

from __future__ import annotations

import copy
from pathlib import Path

import mujoco
import numpy as np
import pytest

from robot_rl.controllers import DelayLine, pd_torque
from robot_rl.errors import AssetError
from robot_rl.sim import make_robot_sim
from robot_rl.sim.mjmodel import write_pd
from robot_rl.sim.robots.a1 import model as a1


@pytest.fixture(scope="module")
def model() -> mujoco.MjModel:
    return a1.build_model()


def test_floating_base_actuators_and_sensors(model: mujoco.MjModel) -> None:
    assert model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE
    assert (model.nq, model.nv, model.nu) == (19, 18, 12)
    assert model.opt.timestep == pytest.approx(0.005)
    assert [model.actuator(i).name for i in range(model.nu)] == a1.JOINT_NAMES
    np.testing.assert_allclose(model.actuator_forcerange, np.tile([-33.5, 33.5], (12, 1)))
    names = {model.sensor(i).name for i in range(model.nsensor)}
    assert {"imu_quat", "imu_gyro", "imu_acc", "trunk_touch", "FR_foot_touch", "RL_thigh_touch"} <= names
    # calf joint limits come from the URDF
    lo, hi = model.jnt_range[model.joint("FR_lower_joint").id]
    assert lo == pytest.approx(-2.6965, abs=1e-3) and hi == pytest.approx(-0.9163, abs=1e-3)
    # only cheap geoms collide, and never with each other
    colliding = [model.geom(i).name for i in range(model.ngeom) if model.geom_contype[i]]
    assert sorted(colliding) == sorted(["floor", "trunk_collision", *a1.FEET, *a1.THIGHS, *a1.CALVES])


def test_mujoco_actuator_force_equals_controllers_law(model: mujoco.MjModel) -> None:
    """Same state, target and parameters: MuJoCo's actuator_force == controllers.pd_torque (incl. clipping)."""
    rng = np.random.default_rng(3)
    m = copy.copy(model)
    d = mujoco.MjData(m)
    lim = np.full(12, a1.TORQUE_LIMIT)
    clipped = 0
    for trial in range(8):
        kp, kd = rng.uniform(0, 60, 12), rng.uniform(0, 3, 12)
        if trial == 0:
            kp[:] = 0.0  # damping mode
        s = rng.uniform(0.8, 1.2)
        write_pd(m, kp, kd, s, lim)
        mujoco.mj_resetDataKeyframe(m, d, 0)
        d.qpos[7:] += rng.uniform(-0.3, 0.3, 12)
        d.qvel[6:] = rng.normal(0, 5, 12)
        d.ctrl[:] = a1.default_joint_pos() + rng.uniform(-0.8, 0.8, 12)
        mujoco.mj_forward(m, d)
        expected = pd_torque(d.qpos[7:], d.qvel[6:], d.ctrl, kp, kd, s, lim)
        np.testing.assert_allclose(d.actuator_force, expected, atol=1e-9)
        clipped += int(np.sum(np.abs(expected) == a1.TORQUE_LIMIT))
    assert clipped > 0  # the torque clip is exercised


def test_robot_sim_latency_is_the_controllers_delay_line() -> None:
    robot = make_robot_sim("a1", params={"latency": 3})
    line = DelayLine(12, 3)
    home = a1.default_joint_pos()
    for k in range(8):
        target = home + 0.05 * k
        robot.step(target)
        np.testing.assert_allclose(robot.data.ctrl, line.push(target))


def test_stands_on_its_feet_with_default_targets(model: mujoco.MjModel) -> None:
    robot = make_robot_sim("a1")
    state = robot.state()
    np.testing.assert_allclose(state.base_quat, robot.data.qpos[3:7], atol=1e-9)  # IMU frame == base frame
    for _ in range(200):
        state = robot.step(a1.default_joint_pos())
    assert 0.22 < state.base_pos[2] < 0.31
    assert state.contacts.all()
    assert robot.data.sensor("trunk_touch").data[0] == 0.0
    np.testing.assert_allclose(state.base_lin_acc, [0, 0, 9.81], atol=0.3)  # accelerometer at rest
    # contact forces carry the weight
    weight = model.body_subtreemass[model.body("trunk").id] * 9.81
    feet = sum(robot.data.sensor(f"{f}_touch").data[0] for f in a1.FEET)
    assert feet == pytest.approx(weight, rel=0.1)


def test_damping_mode_lets_it_sit_down() -> None:
    robot = make_robot_sim("a1")
    robot.set_pd(0.0, 0.5)
    for _ in range(300):
        state = robot.step(np.zeros(12))
    assert state.base_pos[2] < 0.15
    assert np.all(np.isfinite(state.joint_pos))


def test_missing_asset_is_an_asset_error_naming_the_file(tmp_path: Path) -> None:
    missing = tmp_path / "a1.urdf"
    with pytest.raises(AssetError, match="a1.urdf"):
        a1.build_spec(urdf=missing)
    missing.write_text("<robot name='x'><link name='trunk'/></robot>".replace("<robot", "<nothing"))
    with pytest.raises(AssetError, match="a1.urdf"):
        a1.build_spec(urdf=missing)
