"""RobotState: the one structure every source of robot data produces (simulator, ROS 2 messages, rosbag2 logs).

Fields may carry a leading batch dimension (vectorized simulation); deployment code uses the unbatched form.
Joint quantities are in contract joint order. Base quantities are in the base (body) frame, the IMU convention.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np


@dataclass
class RobotState:
    joint_pos: np.ndarray
    """(..., n) joint positions [rad], contract order."""
    joint_vel: np.ndarray
    """(..., n) joint velocities [rad/s]."""
    base_quat: np.ndarray
    """(..., 4) base orientation in the world frame, scalar-first (w, x, y, z) like MuJoCo and ROS' Quaternion.w."""
    base_ang_vel: np.ndarray
    """(..., 3) base angular velocity in the base frame [rad/s] (gyro)."""
    base_lin_acc: np.ndarray
    """(..., 3) proper acceleration in the base frame [m/s^2] (accelerometer, includes gravity reaction)."""
    timestamp: float | np.ndarray = 0.0
    """Seconds; the time at which the state was measured (used for staleness checks)."""
    base_lin_vel: np.ndarray | None = None
    """(..., 3) base linear velocity in the base frame [m/s], when an estimator provides it."""
    base_pos: np.ndarray | None = None
    """(..., 3) base position in the world frame [m], when known (simulation, motion capture)."""
    contacts: np.ndarray | None = None
    """(..., k) foot / end-effector contact flags."""
    joint_effort: np.ndarray | None = None
    """(..., n) measured joint torques [N m]."""
    extras: dict[str, np.ndarray] = field(default_factory=dict)
    """Task quantities that are not proprioception (object pose, goal, end-effector pose)."""

    @property
    def num_joints(self) -> int:
        return int(np.shape(self.joint_pos)[-1])

    def is_finite(self) -> bool:
        arrays = [self.joint_pos, self.joint_vel, self.base_quat, self.base_ang_vel, self.base_lin_acc]
        return all(bool(np.all(np.isfinite(a))) for a in arrays)

    def index(self, i: int | slice | np.ndarray) -> RobotState:
        """Select environments from a batched state."""

        def pick(a: np.ndarray | None) -> np.ndarray | None:
            return None if a is None else a[i]

        ts = self.timestamp[i] if isinstance(self.timestamp, np.ndarray) else self.timestamp
        return RobotState(
            joint_pos=self.joint_pos[i],
            joint_vel=self.joint_vel[i],
            base_quat=self.base_quat[i],
            base_ang_vel=self.base_ang_vel[i],
            base_lin_acc=self.base_lin_acc[i],
            timestamp=ts,
            base_lin_vel=pick(self.base_lin_vel),
            base_pos=pick(self.base_pos),
            contacts=pick(self.contacts),
            joint_effort=pick(self.joint_effort),
            extras={k: v[i] for k, v in self.extras.items()},
        )


def projected_gravity(quat_wxyz: np.ndarray) -> np.ndarray:
    """Unit gravity direction expressed in the base frame, batched over leading dims: R(q)^T @ (0, 0, -1)."""
    q = np.asarray(quat_wxyz, dtype=np.float64)
    # Third row of R, negated: R^T e_z = (2(xz - wy), 2(yz + wx), 1 - 2(x^2 + y^2)).
    if q.ndim == 1:  # one robot (the deployment path, every tick): plain floats beat array slicing
        w, x, y, z = q.tolist()
        return np.array([-2.0 * (x * z - w * y), -2.0 * (y * z + w * x), 2.0 * (x * x + y * y) - 1.0])
    w, x, y, z = q[..., 0], q[..., 1], q[..., 2], q[..., 3]
    out = np.empty(q.shape[:-1] + (3,))
    out[..., 0] = -2.0 * (x * z - w * y)
    out[..., 1] = -2.0 * (y * z + w * x)
    out[..., 2] = 2.0 * (x * x + y * y) - 1.0
    return out


def tilt_angle(quat_wxyz: np.ndarray) -> np.ndarray:
    """Angle between the base z axis and the world z axis [rad]."""
    g = projected_gravity(quat_wxyz)
    return np.arccos(np.clip(-g[..., 2], -1.0, 1.0))
