"""Task panda_pick_place: grasp the cube and hold it at a goal in the air (6 s episodes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_rl.sim.arm_task import PickPlaceTask, arm_train_defaults
from robot_rl.sim.manipulation import (
    ArmControlConfig,
    ArmInitConfig,
    ArmRewardConfig,
    ArmTerminationConfig,
    ManipulationConfig,
)
from robot_rl.sim.robots.panda.model import LOW_POSE

NAME = "panda_pick_place"
TRAIN_DEFAULTS = arm_train_defaults(
    num_envs=64, max_minutes=40.0,
    task_overrides=["num_threads=2", "init.held_fraction=0.25", "init.grasped_fraction=0.25"],
    eval_overrides=["init.held_fraction=0.0", "init.grasped_fraction=0.0"])
"""`robot-rl train` defaults: a quarter of the training episodes start with the hand at the cube, fingers open
(init.held_fraction), a quarter with the cube squeezed 2-3 cm above the table (init.grasped_fraction); evaluation, and
`robot-rl eval` of the bundle, use the task itself (every episode from the hand 10 cm above the table). The
40-minute budget is the one the task was measured with (docs/benchmarks.md, Manipulation)."""


@dataclass(frozen=True)
class PandaPickPlaceConfig(ManipulationConfig):
    """panda_pick_place defaults (sections documented in robot_rl.sim.manipulation)."""

    control: ArmControlConfig = field(default_factory=lambda: ArmControlConfig(gripper="binary"))
    """ee_delta with a binary gripper (closed for a negative command)."""
    rewards: ArmRewardConfig = field(default_factory=lambda: ArmRewardConfig(
        reach=1.0, grasp=1.0, grasp_command=0.0, lift=5.0, lift_progress=2.0, object_to_goal=8.0,
        goal_distance_scale=0.3, object_to_goal_fine=4.0, fine_distance_scale=0.05, success=2.0))
    """IsaacLab's lift-task shape: approach (reach), close on the cube (grasp), a large bonus once lifted past 3 cm
    (lift) with a gradient below it (lift_progress), then a wide (0.3 m) and a sharp (0.05 m) goal kernel that only
    count while lifted, and a bonus within 5 cm."""
    termination: ArmTerminationConfig = field(default_factory=lambda: ArmTerminationConfig(episode_length_s=6.0))
    """120 policy steps."""
    init: ArmInitConfig = field(default_factory=lambda: ArmInitConfig(
        arm_pose=LOW_POSE,
        object_low=(0.45, -0.10), object_high=(0.55, 0.10), goal_low=(0.40, -0.15, 0.10),
        goal_high=(0.60, 0.15, 0.30)))
    """Hand 10 cm above the table, goal 10-30 cm above the table."""


make_task = PickPlaceTask.maker(NAME)
