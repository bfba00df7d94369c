"""Franka Panda: model (model.py), task-facing description (robot.py), one file per task, registered here."""

from robot_rl.sim.registry import RobotSpec, TaskSpec, register_robot, register_task
from robot_rl.sim.robots.panda import pick_place, push, reach
from robot_rl.sim.robots.panda.robot import panda_robot

register_robot(RobotSpec(name="panda", make_robot=panda_robot))
for _task, _cfg, _gym in ((reach, reach.PandaReachConfig, "robot_rl/PandaReach-v0"),
                          (push, push.PandaPushConfig, "robot_rl/PandaPush-v0"),
                          (pick_place, pick_place.PandaPickPlaceConfig, "robot_rl/PandaPickPlace-v0")):
    register_task(TaskSpec(name=_task.NAME, config_cls=_cfg, make_task=_task.make_task, robot="panda",
                           gym_id=_gym, train_defaults=getattr(_task, "TRAIN_DEFAULTS", {})))
