"""Per-joint model of a PD position target held for one policy period, and the barrier rows it yields.

Each joint is modelled as I q'' = kp (u - q) - kd q' + w with u the held target and |w| <= d an unmodelled torque.
The 2x2 system is discretized exactly (matrix exponential over the physics step), so the predicted position,
velocity and PD torque at every physics substep are affine in (q0, v0, u):

    q_t = a_t q0 + b_t v0 + c_t u,   v_t = d_t q0 + e_t v0 + f_t u,   tau_t = kp (u - q_t) - kd v_t

Every barrier row is therefore `cu * u + cq * q0 + cv * v0 <= rhs`, one scalar u per row: the rows are separable
per joint, so the feasible set of each target is an interval [L, U] = an intersection of half-lines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy.linalg import expm

_EPS = 1e-9


@dataclass
class PdResponse:
    """Affine coefficients of the held-target response at substeps t = 0..steps, each array (steps + 1, n)."""

    a: np.ndarray
    b: np.ndarray
    c: np.ndarray
    d: np.ndarray
    e: np.ndarray
    f: np.ndarray
    mq: np.ndarray
    """Worst-case position deviation at t caused by |w| <= disturbance (0 at t = 0)."""
    mv: np.ndarray
    """Worst-case velocity deviation."""
    mtau: np.ndarray
    """Worst-case PD-torque deviation."""


def pd_response(kp: np.ndarray, kd: np.ndarray, inertia: np.ndarray, dt: float, steps: int,
                disturbance: np.ndarray) -> PdResponse:
    """Exact zero-order-hold response of `I q'' = kp (u - q) - kd q' + w` over `steps` physics steps of `dt`."""
    n = kp.shape[0]
    out = {k: np.zeros((steps + 1, n)) for k in "abcdef"}
    mq, mv, mtau = (np.zeros((steps + 1, n)) for _ in range(3))
    for j in range(n):
        m = np.zeros((4, 4))
        m[0, 1] = 1.0
        m[1] = [-kp[j] / inertia[j], -kd[j] / inertia[j], kp[j] / inertia[j], 1.0 / inertia[j]]
        big = expm(m * dt)
        phi, gu, gd = big[:2, :2], big[:2, 2], big[:2, 3]
        s = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 0.0]])  # (q_t, v_t) as rows over (q0, v0, u)
        g = gd.copy()
        accq = accv = acct = 0.0
        for t in range(steps + 1):
            out["a"][t, j], out["b"][t, j], out["c"][t, j] = s[0]
            out["d"][t, j], out["e"][t, j], out["f"][t, j] = s[1]
            mq[t, j], mv[t, j], mtau[t, j] = accq, accv, acct
            s = phi @ s
            s[:, 2] += gu
            accq += abs(g[0]) * disturbance[j]
            accv += abs(g[1]) * disturbance[j]
            acct += abs(kp[j] * g[0] + kd[j] * g[1]) * disturbance[j]
            g = phi @ g
    return PdResponse(mq=mq, mv=mv, mtau=mtau, **out)


@dataclass
class Rows:
    """Barrier rows `cu * u + cq * q0 + cv * v0 <= rhs`, each array (R, n) (row r of joint j)."""

    cu: np.ndarray
    cq: np.ndarray
    cv: np.ndarray
    rhs: np.ndarray
    kind: np.ndarray
    """(R,) row labels: 0 position, 1 velocity, 2 torque, 3 target box."""

    def concat(self, other: Rows) -> Rows:
        return Rows(*(np.concatenate([x, y]) for x, y in ((self.cu, other.cu), (self.cq, other.cq),
                                                             (self.cv, other.cv), (self.rhs, other.rhs),
                                                             (self.kind, other.kind))))

    def explicit(self, q0: np.ndarray, v0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The rows as a dense `G u <= h` (one row per (r, j) with a non-zero target coefficient)."""
        n = self.cu.shape[1]
        r_idx, j_idx = np.nonzero(np.abs(self.cu) > _EPS)
        g = np.zeros((r_idx.size, n))
        g[np.arange(r_idx.size), j_idx] = self.cu[r_idx, j_idx]
        h = self.rhs[r_idx, j_idx] - self.cq[r_idx, j_idx] * q0[j_idx] - self.cv[r_idx, j_idx] * v0[j_idx]
        return g, h


def barrier_rows(resp: PdResponse, kp: np.ndarray, kd: np.ndarray, lower: np.ndarray, upper: np.ndarray,
                 vmax: np.ndarray, tau_max: np.ndarray, gamma: float, decimation: int, lookahead: int,
                 torque_rows: bool) -> Rows:
    """Position, velocity and torque rows along the period (each substep, DT-CBF with gamma) and look-ahead."""
    cu, cq, cv, rhs, kind = [], [], [], [], []

    def add(kind_id: int, u: np.ndarray, q: np.ndarray, v: np.ndarray, r: np.ndarray) -> None:
        cu.append(u)
        cq.append(q)
        cv.append(v)
        rhs.append(r)
        kind.append(kind_id)

    first = range(1, decimation + 1)
    later = range(2 * decimation, (lookahead + 1) * decimation + 1, decimation)
    for times, g in ((first, gamma), (later, 1.0)):
        for t in times:
            a, b, c, d, e, f = (getattr(resp, k)[t] for k in "abcdef")
            add(0, c, a - (1 - g), b, g * upper - resp.mq[t])
            add(0, -c, -a + (1 - g), -b, -g * lower - resp.mq[t])
            add(1, f, d, e - (1 - g), g * vmax - resp.mv[t])
            add(1, -f, -d, -e + (1 - g), g * vmax - resp.mv[t])
    if torque_rows:
        torque_times = list(range(decimation)) + list(range(decimation, lookahead * decimation + 1, decimation))
        for t in torque_times:
            a, b, c, d, e, f = (getattr(resp, k)[t] for k in "abcdef")
            tu, tq, tv = kp * (1 - c) - kd * f, -(kp * a + kd * d), -(kp * b + kd * e)
            add(2, tu, tq, tv, tau_max - resp.mtau[t])
            add(2, -tu, -tq, -tv, tau_max - resp.mtau[t])
    one, zero = np.ones_like(kp), np.zeros_like(kp)
    add(3, one, zero, zero, upper)
    add(3, -one, zero, zero, -lower)
    return Rows(np.array(cu), np.array(cq), np.array(cv), np.array(rhs), np.array(kind))


def interval_table(rows: Rows) -> np.ndarray:
    """(3, 2, R, n) table [K, P, Q] so that min_r(K - P q0 - Q v0) gives [U, -L] per joint.

    Slot 0 holds the rows that bound u from above, slot 1 the (negated) rows that bound it from below; rows that do
    not involve u are dropped (they cannot be changed by the filter), padded with K = +inf. Rows that bound no
    joint from a slot's side are removed from that slot (each slot keeps only its own rows, so the table is about
    half as long as the row list: less work per certify call, same minimum).
    """
    r, n = rows.cu.shape
    parts = []
    for sign in (1.0, -1.0):
        sel = sign * rows.cu > _EPS
        keep = np.flatnonzero(sel.any(axis=1))
        sel = sel[keep]
        scale = np.where(sel, sign * rows.cu[keep], 1.0)
        parts.append((np.where(sel, rows.rhs[keep] / scale, np.inf), np.where(sel, rows.cq[keep] / scale, 0.0),
                      np.where(sel, rows.cv[keep] / scale, 0.0)))
    m = max(max(p[0].shape[0] for p in parts), 1)
    table = np.zeros((3, 2, m, n))
    table[0] = np.inf
    for slot, part in enumerate(parts):
        for k in range(3):
            table[k, slot, :part[k].shape[0]] = part[k]
    return table
