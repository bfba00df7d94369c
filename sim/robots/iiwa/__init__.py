"""KUKA LBR iiwa: model (model.py), task-facing description (robot.py), its task (reach.py), registered here."""

from robot_rl.sim.registry import RobotSpec, TaskSpec, register_robot, register_task
from robot_rl.sim.robots.iiwa import reach
from robot_rl.sim.robots.iiwa.robot import iiwa_robot

register_robot(RobotSpec(name="iiwa", make_robot=iiwa_robot))
register_task(TaskSpec(name=reach.NAME, config_cls=reach.IiwaReachConfig, make_task=reach.make_task, robot="iiwa",
                       gym_id="robot_rl/IiwaReach-v0", train_defaults=reach.TRAIN_DEFAULTS))
