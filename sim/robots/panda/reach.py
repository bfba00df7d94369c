"""Task panda_reach: move the grasp point to a random target in the workspace (3 s episodes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_rl.sim.arm_task import ReachTask, arm_train_defaults
from robot_rl.sim.manipulation import ArmInitConfig, ArmRewardConfig, ArmTerminationConfig, ManipulationConfig

NAME = "panda_reach"
TRAIN_DEFAULTS = arm_train_defaults()
"""`robot-rl train` defaults: the settings this task was measured with (docs/benchmarks.md)."""


@dataclass(frozen=True)
class PandaReachConfig(ManipulationConfig):
    """panda_reach defaults (sections documented in robot_rl.sim.manipulation)."""

    rewards: ArmRewardConfig = field(default_factory=lambda: ArmRewardConfig(reach=1.0, success=1.0))
    """Dense distance kernel plus a bonus inside 5 cm."""
    termination: ArmTerminationConfig = field(default_factory=lambda: ArmTerminationConfig(episode_length_s=3.0))
    """60 policy steps."""
    init: ArmInitConfig = field(default_factory=lambda: ArmInitConfig(goal_low=(0.30, -0.25, 0.10),
                                                                      goal_high=(0.65, 0.25, 0.45)))
    """Targets in a 35 x 50 x 35 cm box in front of the arm."""


make_task = ReachTask.maker(NAME)
