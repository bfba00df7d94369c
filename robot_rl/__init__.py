"""robot_rl: train in simulation, deploy through ROS 2 behind a safety layer, learn again from the robot's logs."""

from robot_rl.contract import ActionSpec, ObsTerm, PolicyContract
from robot_rl.state import RobotState

__all__ = ["ActionSpec", "ObsTerm", "PolicyContract", "RobotState"]
__version__ = "0.1.0"
