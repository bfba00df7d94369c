"""Task iiwa_reach: move the iiwa's grasp point to a random target in the workspace (3 s episodes)."""

from __future__ import annotations

from dataclasses import dataclass, field

from robot_rl.sim.arm_task import ReachTask, arm_train_defaults
from robot_rl.sim.manipulation import ArmInitConfig, ManipulationConfig

NAME = "iiwa_reach"
TRAIN_DEFAULTS = arm_train_defaults()
"""`robot-rl train` defaults: those of panda_reach (same task on another arm)."""


@dataclass(frozen=True)
class IiwaReachConfig(ManipulationConfig):
    """iiwa_reach defaults (sections documented in robot_rl.sim.manipulation)."""

    robot: str = "iiwa"
    """The KUKA iiwa (no gripper: ee_delta actions are the 3 end-effector displacements). Rewards (dense distance
    kernel plus a bonus inside 5 cm) and the 3 s episodes are the section defaults."""
    init: ArmInitConfig = field(default_factory=lambda: ArmInitConfig(goal_low=(0.40, -0.25, 0.20),
                                                                      goal_high=(0.70, 0.25, 0.55)))
    """Targets in a 30 x 50 x 35 cm box in front of the arm, around the home pose's grasp point."""


make_task = ReachTask.maker(NAME)
