"""The iiwa as the manipulation tasks see it: joint order, home pose, gains, limits, grasp site, model builder."""

from __future__ import annotations

import mujoco

from robot_rl.sim.manipulation import ArmControlConfig, ArmRobot
from robot_rl.sim.robots.iiwa import model


def _build(control: ArmControlConfig) -> mujoco.MjModel:
    return model.build_model(control.physics_dt, model.KP * control.kp_scale, model.KD)


def iiwa_robot() -> ArmRobot:
    effort, velocity = model.urdf_limits()
    return ArmRobot(
        name="iiwa",
        joint_names=list(model.JOINT_NAMES),
        arm_joints=len(model.JOINT_NAMES),
        default_joint_pos=model.HOME.copy(),
        kp=model.KP.copy(),
        kd=model.KD.copy(),
        torque_limit=effort,
        velocity_limit=velocity,
        ee_site=model.EE_SITE,
        build_model=_build,
        urdf=str(model.urdf_path()),
        source="pybullet_data kuka_iiwa/model.urdf via robot_rl.sim.robots.iiwa.model",
    )
