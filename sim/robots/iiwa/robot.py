"""The iiwa as the manipulation tasks see it: joint order, home pose, gains, limits, grasp site, model builder."""

from __future__ import annotations

from robot_rl.sim.manipulation import ArmRobot, arm_robot
from robot_rl.sim.robots.iiwa import model


def iiwa_robot() -> ArmRobot:
    return arm_robot("iiwa", model, arm_joints=len(model.JOINT_NAMES),
                     source="pybullet_data kuka_iiwa/model.urdf via robot_rl.sim.robots.iiwa.model")
