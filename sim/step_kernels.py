"""Compiled pieces of the vectorized environment's serial step (sensor noise, swing-time bookkeeping, frame change).

With two physics threads, the numpy work between two rollouts runs on one core and bounds the speedup (Amdahl);
there each numpy call costs a few microseconds, more right after the rollout has filled the caches. These kernels
replace runs of numpy calls with one loop each. They are written operation for operation as the numpy expressions
they replace (same order of additions, sums of four in sequence, as numpy does for rows that short), so a training
run is bit-identical with and without them (tests/sim/test_sim_step_kernels.py keeps the numpy forms as reference).
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def sensor_noise(joint_pos: np.ndarray, joint_vel: np.ndarray, ang_vel: np.ndarray, quat: np.ndarray,
                 joint_pos_bias: np.ndarray, joint_pos_std: np.ndarray, joint_vel_std: np.ndarray,
                 ang_vel_bias: np.ndarray, ang_vel_std: np.ndarray, quat_std: np.ndarray, z: np.ndarray,
                 out_pos: np.ndarray, out_vel: np.ndarray, out_ang_vel: np.ndarray, out_quat: np.ndarray) -> None:
    """Measured = true + bias + z * std per field, the quaternion renormalized; `z` holds the standard normals for
    joint positions, joint velocities, gyro and quaternion, each block row-major (N, width), in that order."""
    n, nj = joint_pos.shape
    o_vel, o_gyro = n * nj, 2 * n * nj
    o_quat = o_gyro + 3 * n
    for e in range(n):
        for j in range(nj):
            out_pos[e, j] = (joint_pos[e, j] + joint_pos_bias[e, j]) + z[e * nj + j] * joint_pos_std[e]
            out_vel[e, j] = joint_vel[e, j] + z[o_vel + e * nj + j] * joint_vel_std[e]
        for k in range(3):
            out_ang_vel[e, k] = (ang_vel[e, k] + ang_vel_bias[e, k]) + z[o_gyro + e * 3 + k] * ang_vel_std[e]
        sq = 0.0
        for k in range(4):
            v = quat[e, k] + z[o_quat + e * 4 + k] * quat_std[e]
            out_quat[e, k] = v
            sq += v * v
        norm = math.sqrt(sq)
        for k in range(4):
            out_quat[e, k] /= norm


@njit(cache=True, nogil=True)
def swing_times(feet_touch: np.ndarray, last_contact: np.ndarray, air_time: np.ndarray, dt: float,
                air_out: np.ndarray, first_contact: np.ndarray) -> None:
    """Touch-down bookkeeping (legged_gym's feet_air_time): `first_contact` = a foot in the air lands this step
    (contact now or last step), `air_out` = swing time including this step; `air_time` is then zeroed for feet in
    contact and `last_contact` updated, both in place."""
    n, f = feet_touch.shape
    for e in range(n):
        for k in range(f):
            contact = feet_touch[e, k] > 1.0
            filt = contact or last_contact[e, k]
            first_contact[e, k] = air_time[e, k] > 0.0 and filt
            t = air_time[e, k] + dt
            air_out[e, k] = t
            air_time[e, k] = 0.0 if filt else t
            last_contact[e, k] = contact


@njit(cache=True, nogil=True)
def rotate_inverse_and_gravity(q: np.ndarray, v: np.ndarray, out: np.ndarray, gravity: np.ndarray) -> None:
    """out = R(q)^T v (world vectors into the frames of unit quaternions (w, x, y, z)) and gravity = R(q)^T (0, 0, -1),
    as `quat_rotate_inverse` and `robot_rl.state.projected_gravity` compute them."""
    for e in range(q.shape[0]):
        w, x, y, z = q[e, 0], q[e, 1], q[e, 2], q[e, 3]
        vx, vy, vz = v[e, 0], v[e, 1], v[e, 2]
        tx, ty, tz = 2.0 * (y * vz - z * vy), 2.0 * (z * vx - x * vz), 2.0 * (x * vy - y * vx)
        out[e, 0] = vx - w * tx + (y * tz - z * ty)
        out[e, 1] = vy - w * ty + (z * tx - x * tz)
        out[e, 2] = vz - w * tz + (x * ty - y * tx)
        gravity[e, 0] = -2.0 * (x * z - w * y)
        gravity[e, 1] = -2.0 * (y * z + w * x)
        gravity[e, 2] = 2.0 * (x * x + y * y) - 1.0


@njit(cache=True, nogil=True)
def take_last_state(out: np.ndarray, state: np.ndarray, prev_state: np.ndarray, qvel_start: int, qvel_end: int,
                    max_qvel: float, dt_min: float) -> bool:
    """state[:] = out[:, -1] (the rollout's last physics step), and in the same pass: is every row finite, every
    |qvel| <= max_qvel and time advanced by at least dt_min? False sends the caller to its per-row check."""
    ok = True
    last = out.shape[1] - 1
    for e in range(state.shape[0]):
        for k in range(state.shape[1]):
            x = out[e, last, k]
            state[e, k] = x
            if x - x != 0.0:  # NaN or +-inf
                ok = False
            elif qvel_start <= k < qvel_end and abs(x) > max_qvel:
                ok = False
        if not state[e, 0] - prev_state[e, 0] >= dt_min:
            ok = False
    return ok


def quat_rotate_inverse(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate world vectors v (N, 3) into the frames of unit quaternions q (N, 4) (w, x, y, z): R(q)^T v (numpy; the
    form `rotate_inverse_and_gravity` is checked against)."""
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    vx, vy, vz = v[:, 0], v[:, 1], v[:, 2]
    # t = 2 (xyz x v); result = v - w t + xyz x t  (written out: np.cross is slow on small batches)
    tx, ty, tz = 2.0 * (y * vz - z * vy), 2.0 * (z * vx - x * vz), 2.0 * (x * vy - y * vx)
    out = np.empty_like(v)
    out[:, 0] = vx - w * tx + (y * tz - z * ty)
    out[:, 1] = vy - w * ty + (z * tx - x * tz)
    out[:, 2] = vz - w * tz + (x * ty - y * tx)
    return out
