"""Coupled (mass-matrix) model of PD position targets held for one policy period, for arms.

The per-joint model of safety/model.py treats each joint as an independent inertia. On an arm the shoulder's
3 kg m^2 drives 0.01 kg m^2 wrist joints through the off-diagonal mass-matrix terms, far beyond any honest bound on
"unmodelled torque". Here the whole arm is one linear system, linearized at the current state:

    M(q0) q'' = Kp (u - q) - Kd q' - b(q0, q0') + w,      |w_j| <= d_j

with M from the URDF inertials (composite rigid body algorithm, safety/kinematics.py), b the Coriolis/centrifugal
torques plus any gravity the joint controller does not compensate (Newton-Euler), held over the period. The
2n-state system is discretized exactly over the physics step (one matrix exponential of the system augmented with u,
the constant bias and the disturbance inputs), so the predicted positions, velocities and PD torques are affine in
the held target u at every substep. Each barrier is a full row over u (joints couple); rows are two-sided
(`lower <= A u <= upper`) and go to DAQP. The worst case of w is the exact l1 bound through the impulse response.

The matrices depend on the state through M(q0), so they are rebuilt every tick (a few hundred microseconds for a
7-joint arm); the decoupled model keeps its precomputed interval tables.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robot_rl.contract import PolicyContract
from robot_rl.errors import ConfigError
from robot_rl.safety.config import CbfConfig
from robot_rl.safety.kinematics import JointSpaceDynamics


def expm_small(a: np.ndarray, order: int = 14) -> np.ndarray:
    """Matrix exponential of a small dense matrix: scaling and squaring with a Horner-form Taylor series.

    Scaled to 1-norm <= 0.5, order 14 leaves a truncation error below 1e-19 relative, far under float64 rounding.
    Plain numpy matmuls: scipy's Pade routine calls its own multi-threaded BLAS, whose thread hand-off costs
    milliseconds on a loaded 2-core machine.
    """
    norm = float(np.abs(a).sum(axis=0).max())
    squarings = max(0, int(np.ceil(np.log2(norm / 0.5)))) if norm > 0.5 else 0
    x = a / (2.0 ** squarings)
    eye = np.eye(a.shape[0])
    e = eye + x / order
    for k in range(order - 1, 0, -1):
        e = eye + (x @ e) / k
    for _ in range(squarings):
        e = e @ e
    return e


@dataclass
class CoupledRows:
    """Two-sided rows `lower <= A u <= upper` of one relaxation level."""

    a: np.ndarray
    """(R, n)."""
    lower: np.ndarray
    upper: np.ndarray
    end_q: np.ndarray
    """(n,) predicted position at the end of the period with u = 0 (for the Cartesian rows)."""
    end_u: np.ndarray
    """(n, n) d q_end / d u."""


class CoupledModel:
    """Builds the coupled barrier rows for a state; levels 0 (gamma), 1 (gamma = 1), 2 (no torque rows)."""

    def __init__(self, contract: PolicyContract, cfg: CbfConfig) -> None:
        n = contract.num_joints
        urdf = cfg.urdf if cfg.urdf is not None else (cfg.workspace.urdf if cfg.workspace is not None else None)
        if urdf is None:
            raise ConfigError("safety.cbf.urdf: the coupled model needs a URDF (urdf, or workspace.urdf)")
        base = cfg.base_link if cfg.base_link is not None else (
            cfg.workspace.base_link if cfg.workspace is not None else None)
        self.dynamics = JointSpaceDynamics(urdf, list(contract.joint_names), base, cfg.armature, cfg.gravity)
        self.n = n
        self.kp = np.asarray(contract.kp, float)
        self.kd = np.asarray(contract.kd, float)
        self.lower = np.asarray(contract.joint_pos_lower, float) + cfg.pos_margin
        self.upper = np.asarray(contract.joint_pos_upper, float) - cfg.pos_margin
        self.vmax = np.asarray(contract.joint_vel_limit, float) - cfg.vel_margin
        self.tau = np.asarray(contract.torque_limit, float)
        self.dist = np.broadcast_to(np.asarray(cfg.disturbance_torque, float), (n,)).copy()
        self.dt = 1.0 / contract.physics_rate_hz
        self.dec = contract.decimation
        self.lookahead = cfg.lookahead_periods
        self.gamma = cfg.gamma
        self.torque_rows = cfg.torque_rows
        self.scales = list(cfg.inertia_scales)
        size = 4 * n + 1
        self._f = np.zeros((size, size))
        self._f[:n, n:2 * n] = np.eye(n)
        self._kp_mat = np.diag(self.kp)
        self._kd_mat = np.diag(self.kd)

    def _discretize(self, minv: np.ndarray, bias: np.ndarray) -> tuple[np.ndarray, ...]:
        """Phi (2n, 2n), Gamma_u (2n, n), gamma_c (2n,), Gamma_w (2n, n) of one physics step."""
        n, f = self.n, self._f
        f[n:2 * n, :n] = -minv * self.kp
        f[n:2 * n, n:2 * n] = -minv * self.kd
        f[n:2 * n, 2 * n:3 * n] = minv * self.kp
        f[n:2 * n, 3 * n] = -minv @ bias
        f[n:2 * n, 3 * n + 1:] = minv
        e = expm_small(f * self.dt)
        return e[:2 * n, :2 * n], e[:2 * n, 2 * n:3 * n], e[:2 * n, 3 * n], e[:2 * n, 3 * n + 1:]

    def _trajectory(self, mass: np.ndarray, bias: np.ndarray, q: np.ndarray,
                    v: np.ndarray) -> tuple[np.ndarray, ...]:
        """Predicted mean state, d state / d u and worst-case deviations at the times the rows need.

        Returns (times, mean (T, 2n), du (T, 2n, n), dev (T, 2n), tau_dev (T, n)) for T = 0..dec (every
        substep of this period) followed by the ends of the look-ahead periods.
        """
        n, dec = self.n, self.dec
        phi, gu, gc, gw = self._discretize(np.linalg.inv(mass), bias)
        x0 = np.concatenate([q, v])
        steps = dec + self.lookahead
        mean = np.empty((steps + 1, 2 * n))
        du = np.empty((steps + 1, 2 * n, n))
        dev = np.zeros((steps + 1, 2 * n))
        tdev = np.zeros((steps + 1, n))
        mean[0], du[0] = x0, 0.0
        w_seq = np.empty((dec, 2 * n, n))
        w = gw
        for t in range(1, dec + 1):
            mean[t] = phi @ mean[t - 1] + gc
            du[t] = phi @ du[t - 1] + gu
            w_seq[t - 1] = w
            w = phi @ w
        robust = bool(np.any(self.dist > 0))
        if robust:
            # worst case of |w| <= d through the impulse response: sum_k |Phi^k Gamma_w| d (and the PD torque)
            wd = np.abs(w_seq) @ self.dist
            wt = np.abs(self.kp[:, None] * w_seq[:, :n] + self.kd[:, None] * w_seq[:, n:]) @ self.dist
            np.cumsum(wd, axis=0, out=dev[1:dec + 1])
            np.cumsum(wt, axis=0, out=tdev[1:dec + 1])
        phi_t = np.linalg.matrix_power(phi, dec)
        gu_t, gc_t = du[dec], mean[dec] - phi_t @ x0
        power = phi_t
        for k in range(1, self.lookahead + 1):
            t = dec + k
            mean[t] = phi_t @ mean[t - 1] + gc_t
            du[t] = phi_t @ du[t - 1] + gu_t
            if robust:
                block = power @ w_seq
                dev[t] = dev[t - 1] + (np.abs(block) @ self.dist).sum(axis=0)
                tdev[t] = tdev[t - 1] + (np.abs(self.kp[:, None] * block[:, :n] + self.kd[:, None] * block[:, n:])
                                         @ self.dist).sum(axis=0)
                power = phi_t @ power
        return mean, du, dev, tdev

    def rows(self, q: np.ndarray, v: np.ndarray) -> list[CoupledRows]:
        """Rows of relaxation levels 0, 1, 2 for state (q, v) (level 2 drops the torque rows)."""
        n, dec = self.n, self.dec
        mass, bias = self.dynamics.evaluate(q, v)
        per_level: list[list[tuple[np.ndarray, np.ndarray, np.ndarray]]] = [[], [], []]
        end_q = end_u = None
        for scale in self.scales:
            mean, du, dev, tdev = self._trajectory(mass * scale, bias, q, v)
            if end_q is None:
                end_q, end_u = mean[dec, :n], du[dec, :n]
            first, later = slice(1, dec + 1), slice(dec + 1, None)
            x0 = np.concatenate([q, v])
            lim_lo = np.concatenate([self.lower, -self.vmax])
            lim_hi = np.concatenate([self.upper, self.vmax])
            later_rows = (du[later].reshape(-1, n), (lim_lo + dev[later] - mean[later]).ravel(),
                          (lim_hi - dev[later] - mean[later]).ravel())
            # torque at the start of every substep of this period and of every look-ahead period
            ttimes = list(range(dec)) + list(range(dec, dec + self.lookahead))
            tq = self.kp[:, None] * (np.eye(n) - du[ttimes, :n]) - self.kd[:, None] * du[ttimes, n:]
            tmean = -(self.kp * mean[ttimes, :n] + self.kd * mean[ttimes, n:])
            tlim = self.tau - tdev[ttimes]
            torque = (tq.reshape(-1, n), (-tlim - tmean).ravel(), (tlim - tmean).ravel())
            for lv, gamma in enumerate((self.gamma, 1.0, 1.0)):
                lo = gamma * lim_lo + (1 - gamma) * x0 + dev[first] - mean[first]
                hi = gamma * lim_hi + (1 - gamma) * x0 - dev[first] - mean[first]
                per_level[lv].append((du[first].reshape(-1, n), lo.ravel(), hi.ravel()))
                per_level[lv].append(later_rows)
                if lv < 2 and self.torque_rows:
                    per_level[lv].append(torque)
        assert end_q is not None and end_u is not None
        out = []
        for parts in per_level:
            a, lo, hi = (np.concatenate(x) for x in zip(*parts))
            out.append(CoupledRows(a, lo, hi, end_q, end_u))
        return out
