"""The A1 as the tasks see it: joint order, default pose, limits, body and sensor names, model builder."""

from __future__ import annotations

import mujoco
import numpy as np

from robot_rl.sim.locomotion import ControlConfig, LeggedRobot
from robot_rl.sim.robots.a1 import model


def _build(control: ControlConfig) -> mujoco.MjModel:
    return model.build_model(control.physics_dt, control.kp, control.kd)


def a1_robot() -> LeggedRobot:
    n = len(model.JOINT_NAMES)
    return LeggedRobot(
        name="a1",
        joint_names=list(model.JOINT_NAMES),
        default_joint_pos=model.default_joint_pos(),
        torque_limit=np.full(n, model.TORQUE_LIMIT),
        velocity_limit=np.full(n, model.VELOCITY_LIMIT),
        base_body=model.TRUNK,
        feet=list(model.FEET),
        thighs=list(model.THIGHS),
        calves=list(model.CALVES),
        build_model=_build,
        source="pybullet_data a1/a1.urdf via robot_rl.sim.robots.a1.model",
        urdf=str(model.urdf_path()),
    )
