"""PD / operational-space controllers and actuator models shared by simulation and robots. No simulator imports."""

from robot_rl.controllers.pd import (
    ActuatorParams,
    DelayLine,
    JointPD,
    TargetHistory,
    actuator_coefficients,
    delayed_indices,
    pd_torque,
)

__all__ = ["ActuatorParams", "DelayLine", "JointPD", "TargetHistory", "actuator_coefficients", "delayed_indices",
           "pd_torque"]
