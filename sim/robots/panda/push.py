"""Task panda_push: push a cube across the table to a goal on the table (5 s episodes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_rl.sim.arm_task import PushTask, arm_train_defaults
from robot_rl.sim.manipulation import ArmInitConfig, ArmRewardConfig, ArmTerminationConfig, ManipulationConfig
from robot_rl.sim.robots.panda.model import LOW_POSE

NAME = "panda_push"
TRAIN_DEFAULTS = arm_train_defaults(num_envs=64, max_minutes=45.0)
"""`robot-rl train` defaults: the settings this task was measured with (docs/benchmarks.md)."""


@dataclass(frozen=True)
class PandaPushConfig(ManipulationConfig):
    """panda_push defaults (sections documented in robot_rl.sim.manipulation)."""

    rewards: ArmRewardConfig = field(default_factory=lambda: ArmRewardConfig(reach=0.0, push_pose=1.0,
                                                                             object_to_goal=2.0, success=2.0))
    """Put the hand behind the cube (seen from the goal), move the cube to the goal, bonus within 5 cm."""
    termination: ArmTerminationConfig = field(default_factory=lambda: ArmTerminationConfig(episode_length_s=5.0))
    """100 policy steps; the cube leaving the table ends the episode."""
    init: ArmInitConfig = field(default_factory=lambda: ArmInitConfig(
        arm_pose=LOW_POSE,
        object_low=(0.45, -0.10), object_high=(0.55, 0.10), goal_low=(0.40, -0.15, 0.0),
        goal_high=(0.65, 0.15, 0.0), goal_min_distance=0.08))
    """Hand 10 cm above the table at x = 0.42 m, cube in a 10 x 20 cm patch, goal 8 cm or more away on the table."""


make_task = PushTask.maker(NAME)
