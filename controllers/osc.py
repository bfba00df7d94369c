"""End-effector (operational-space) control of an arm on top of the joint PD, plain numpy, no simulator imports.

An `ee_delta` action a = (dx, dy, dz, gripper) in [-1, 1] becomes joint position targets once per policy period:

    dx_task = (scale * a[:3], orientation_gain * e_rot)          e_rot: hand orientation error to `target_rot`
    dq      = J^T (J J^T + damping^2 I)^-1 dx_task               damped least squares on the 6 x n_arm Jacobian
    q_des   = q_arm + dq,   finger = lower + (a[3] + 1) / 2 * (upper - lower)     (continuous gripper)
                            finger = lower if a[3] < 0 else upper               (binary gripper)

and the joint PD + actuator model (controllers.pd) tracks q_des at physics rate, exactly as for joint actions, so the
safety chain still certifies joint targets. The Jacobian comes from whoever holds the kinematics (the simulator's
model, or robot_rl.safety.SerialChain from the URDF on the robot), which keeps this module usable on the robot.
Everything is batched over a leading environment axis.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def orientation_error(rot: np.ndarray, target: np.ndarray) -> np.ndarray:
    """Small-angle rotation vector (..., 3) that turns `rot` (..., 3, 3) towards `target` (3, 3), world frame."""
    return 0.5 * np.sum(np.cross(rot.swapaxes(-1, -2), np.broadcast_to(target.T, rot.shape)), axis=-2)


def damped_least_squares(jac: np.ndarray, err: np.ndarray, damping: float) -> np.ndarray:
    """dq (..., n) = J^T (J J^T + damping^2 I)^-1 err for J (..., m, n), err (..., m)."""
    m = jac.shape[-2]
    jjt = jac @ jac.swapaxes(-1, -2) + (damping ** 2) * np.eye(m)
    return (jac.swapaxes(-1, -2) @ np.linalg.solve(jjt, err[..., None]))[..., 0]


@dataclass(frozen=True)
class EndEffectorController:
    """Maps ee_delta actions to joint targets and back (the action the learner stores after the safety chain)."""

    arm_joints: int
    """Leading contract joints that belong to the arm; a following joint is the gripper."""
    scale: float
    """End-effector displacement per unit action [m]."""
    damping: float
    """DLS damping [m]."""
    orientation_gain: float
    """Fraction of the orientation error corrected per policy step (0 leaves orientation free)."""
    target_rot: np.ndarray
    """(3, 3) hand orientation to hold (world frame)."""
    gripper_lower: float = 0.0
    gripper_upper: float = 0.0
    """Gripper joint range; the action maps -1 -> lower (closed), +1 -> upper (open)."""
    gripper_binary: bool = False
    """Binary gripper (IsaacLab's BinaryJointPositionAction for the Panda hand): a negative command closes fully
    (target `lower`, the fingers squeeze with the full PD force), any other opens fully. Exploration noise then only
    drops a held object when it flips the command's sign, not whenever it wobbles the squeeze."""

    @property
    def has_gripper(self) -> bool:
        return self.gripper_upper > self.gripper_lower

    def targets(self, action: np.ndarray, q: np.ndarray, jac: np.ndarray, rot: np.ndarray) -> np.ndarray:
        """Joint targets (N, n) from clipped actions (N, 3 or 4), measured q (N, n), the 6 x arm_joints Jacobian
        (N, 6, arm) (linear rows first) and the hand orientation (N, 3, 3)."""
        na = self.arm_joints
        err = np.empty((action.shape[0], 6))
        err[:, :3] = self.scale * action[:, :3]
        err[:, 3:] = self.orientation_gain * orientation_error(rot, self.target_rot)
        out = np.array(q, dtype=np.float64, copy=True)
        out[:, :na] += damped_least_squares(jac[:, :, :na], err, self.damping)
        if self.has_gripper:
            g = np.where(action[:, 3] < 0.0, -1.0, 1.0) if self.gripper_binary else action[:, 3]
            out[:, na] = self.gripper_lower + (g + 1.0) * 0.5 * (self.gripper_upper - self.gripper_lower)
        return out

    def action_of(self, targets: np.ndarray, q: np.ndarray, jac: np.ndarray) -> np.ndarray:
        """The ee_delta action that the (certified) joint targets realise to first order: J_pos (q_des - q) / scale,
        gripper from its target."""
        na = self.arm_joints
        dq = np.asarray(targets)[:, :na] - np.asarray(q)[:, :na]
        xyz = (jac[:, :3, :na] @ dq[..., None])[..., 0] / self.scale
        if not self.has_gripper:
            return xyz
        g = 2.0 * (np.asarray(targets)[:, na] - self.gripper_lower) / (self.gripper_upper - self.gripper_lower) - 1.0
        return np.concatenate([xyz, g[:, None]], axis=1)
