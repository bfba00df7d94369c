"""The Panda as the manipulation tasks see it: joint order, home pose, gains, limits, grasp site, model builder."""

from __future__ import annotations

from robot_rl.sim.manipulation import ArmRobot, arm_robot
from robot_rl.sim.robots.panda import model


def panda_robot() -> ArmRobot:
    return arm_robot("panda", model, arm_joints=len(model.ARM_JOINTS), mimic_joints=(model.MIMIC_JOINT,),
                     source="pybullet_data franka_panda/panda.urdf via robot_rl.sim.robots.panda.model")
