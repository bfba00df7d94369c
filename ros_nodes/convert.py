"""ROS 2 message <-> RobotState conversion. Joints are matched BY NAME, never by position in the message.

Duck-typed over the message objects (the attribute names of sensor_msgs/JointState, sensor_msgs/Imu and
geometry_msgs/Twist), so this module does not import rclpy and is shared by the nodes, the recorder and tests.
Readers return a fault reason (a short string) instead of raising: a bad message is data for the watchdog.
"""

from __future__ import annotations

import array
import math
from typing import Any

import numpy as np

from robot_rl.contract import PolicyContract
from robot_rl.errors import ContractError
from robot_rl.state import RobotState

# contract command name -> (Twist field, axis). Names follow legged_gym / Isaac Lab / MuJoCo Playground.
TWIST_FIELDS: dict[str, tuple[str, str]] = {
    "lin_vel_x": ("linear", "x"), "vx": ("linear", "x"), "vel_x": ("linear", "x"),
    "lin_vel_y": ("linear", "y"), "vy": ("linear", "y"), "vel_y": ("linear", "y"),
    "lin_vel_z": ("linear", "z"), "vz": ("linear", "z"),
    "ang_vel_x": ("angular", "x"), "ang_vel_y": ("angular", "y"),
    "ang_vel_z": ("angular", "z"), "ang_vel_yaw": ("angular", "z"), "yaw_rate": ("angular", "z"),
    "wz": ("angular", "z"), "yaw": ("angular", "z"),
}


class JointStateReader:
    """Copies a JointState's positions/velocities into contract order; the name -> index map is cached."""

    def __init__(self, joint_names: list[str]) -> None:
        self.joint_names = list(joint_names)
        self._key: tuple[str, ...] | None = None
        self._idx = np.zeros(len(joint_names), np.intp)
        self._missing: list[str] = []

    def missing(self, msg_names: list[str]) -> list[str]:
        """Contract joints absent from a message's name list (extra joints in the message are ignored)."""
        present = set(msg_names)
        return [j for j in self.joint_names if j not in present]

    def read(self, msg: Any, pos_out: np.ndarray, vel_out: np.ndarray, eff_out: np.ndarray | None = None) -> str | None:
        """Fill `pos_out`/`vel_out`/`eff_out` (contract order) from `msg`; return None, or why the message is
        unusable. A message without efforts (a robot that does not report torques) fills `eff_out` with NaN: not
        measured, which the tick log records as absent, never as zero torque.

        Everything is checked before anything is written: on a fault the outputs keep their previous values."""
        names = msg.name
        key = tuple(names)
        if key != self._key:
            index = {n: i for i, n in enumerate(names)}
            if len(index) != len(names):
                return "joint_states has duplicate joint names"
            self._missing = [j for j in self.joint_names if j not in index]
            if not self._missing:
                self._idx[:] = [index[j] for j in self.joint_names]
            self._key = key
        if self._missing:
            return "joint_states lacks contract joints: " + ", ".join(self._missing)
        n = len(names)
        position, velocity, effort = msg.position, msg.velocity, msg.effort
        if len(position) != n or len(velocity) != n or len(effort) not in (0, n):  # JointState: same size or empty
            return (f"joint_states mis-sized: {n} names, {len(position)} positions, {len(velocity)} velocities, "
                    f"{len(effort)} efforts")
        if not math.isfinite(sum(position) + sum(velocity) + sum(effort)):  # any NaN / inf makes the sum non-finite
            return "joint_states has non-finite values"
        idx = self._idx
        pos_out[:] = _floats(position)[idx]  # fancy indexing: several times cheaper than np.take(out=) at n = 12
        vel_out[:] = _floats(velocity)[idx]
        if eff_out is not None:
            if len(effort):
                eff_out[:] = _floats(effort)[idx]
            else:
                eff_out[:] = np.nan
        return None


def _floats(seq: Any) -> np.ndarray:
    """A float64 view of a message's double sequence (array.array in rclpy: no copy)."""
    return np.frombuffer(seq) if isinstance(seq, array.array) else np.asarray(seq, dtype=np.float64)


IMU_FIELDS = frozenset({"base_quat", "base_ang_vel", "base_lin_acc"})
"""RobotState fields an IMU measures (`read_imu` fills them): a contract whose observation reads none needs no IMU."""


def read_imu(msg: Any, quat_out: np.ndarray, gyro_out: np.ndarray, acc_out: np.ndarray) -> str | None:
    """Fill the scalar-first quaternion, gyro and accelerometer from sensor_msgs/Imu; None or the fault (then the
    outputs are left untouched)."""
    if msg.orientation_covariance[0] == -1.0:
        return "imu has no orientation (orientation_covariance[0] == -1)"
    o, w, a = msg.orientation, msg.angular_velocity, msg.linear_acceleration
    qw, qx, qy, qz = o.w, o.x, o.y, o.z
    gx, gy, gz, ax, ay, az = w.x, w.y, w.z, a.x, a.y, a.z
    if not math.isfinite(qw + qx + qy + qz + gx + gy + gz + ax + ay + az):  # plain floats: cheaper than numpy here
        return "imu has non-finite values"
    norm = math.sqrt(qw * qw + qx * qx + qy * qy + qz * qz)
    if abs(norm - 1.0) > 0.1:
        return f"imu orientation is not a unit quaternion (norm {norm:.3f})"
    quat_out[0], quat_out[1], quat_out[2], quat_out[3] = qw / norm, qx / norm, qy / norm, qz / norm
    gyro_out[0], gyro_out[1], gyro_out[2] = gx, gy, gz
    acc_out[0], acc_out[1], acc_out[2] = ax, ay, az
    return None


class TwistCommand:
    """Maps geometry_msgs/Twist onto the contract's command vector, clipped to the trained command ranges."""

    def __init__(self, contract: PolicyContract) -> None:
        unknown = [c for c in contract.command_names if c not in TWIST_FIELDS]
        if unknown:
            raise ContractError(f"contract commands have no cmd_vel (Twist) mapping: {', '.join(unknown)} "
                                f"(known: {', '.join(sorted(TWIST_FIELDS))})")
        self._fields = [TWIST_FIELDS[c] for c in contract.command_names]
        ranges = np.asarray(contract.command_ranges, np.float64).reshape(-1, 2)
        self._lo, self._hi = ranges[:, 0], ranges[:, 1]
        self.value = np.zeros(len(self._fields))

    def zero(self) -> None:
        self.value[:] = 0.0

    def read(self, msg: Any) -> str | None:
        vals = [getattr(getattr(msg, part), axis) for part, axis in self._fields]
        if not all(np.isfinite(vals)):
            return "cmd_vel has non-finite values"
        np.clip(vals, self._lo, self._hi, out=self.value)
        return None


def new_state(num_joints: int) -> RobotState:
    """A preallocated, unbatched RobotState that the readers fill in place."""
    return RobotState(joint_pos=np.zeros(num_joints), joint_vel=np.zeros(num_joints),
                      base_quat=np.array([1.0, 0.0, 0.0, 0.0]), base_ang_vel=np.zeros(3), base_lin_acc=np.zeros(3),
                      joint_effort=np.zeros(num_joints))


def fill_joint_state(msg: Any, names: list[str], state: RobotState) -> None:
    """Write a RobotState's joints into a JointState (`names` in the state's joint order); header left to caller."""
    msg.name = names
    msg.position = array.array("d", np.asarray(state.joint_pos, np.float64).tobytes())
    msg.velocity = array.array("d", np.asarray(state.joint_vel, np.float64).tobytes())
    if state.joint_effort is not None:
        msg.effort = array.array("d", np.asarray(state.joint_effort, np.float64).tobytes())


def fill_imu(msg: Any, state: RobotState) -> None:
    """Write orientation (scalar-first in RobotState), gyro and accelerometer into a sensor_msgs/Imu."""
    q = np.asarray(state.base_quat, np.float64)
    o = msg.orientation
    o.w, o.x, o.y, o.z = float(q[0]), float(q[1]), float(q[2]), float(q[3])
    w = np.asarray(state.base_ang_vel, np.float64)
    msg.angular_velocity.x, msg.angular_velocity.y, msg.angular_velocity.z = float(w[0]), float(w[1]), float(w[2])
    a = np.asarray(state.base_lin_acc, np.float64)
    acc = msg.linear_acceleration
    acc.x, acc.y, acc.z = float(a[0]), float(a[1]), float(a[2])


def targets_to_array(targets: np.ndarray) -> array.array:
    """Contract-ordered joint targets as the `data` of a std_msgs/Float64MultiArray."""
    return array.array("d", np.asarray(targets, np.float64).tobytes())
