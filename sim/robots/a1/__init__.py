"""Unitree A1: model (model.py), task-facing description (robot.py), tasks (one file each) registered here."""

from robot_rl.sim.registry import RobotSpec, TaskSpec, register_robot, register_task
from robot_rl.sim.robots.a1 import walk
from robot_rl.sim.robots.a1.robot import a1_robot

register_robot(RobotSpec(name="a1", make_robot=a1_robot))
register_task(TaskSpec(name=walk.NAME, config_cls=walk.A1WalkConfig, make_task=walk.make_task, robot="a1",
                       gym_id="robot_rl/A1Walk-v0", train_defaults=walk.TRAIN_DEFAULTS))
