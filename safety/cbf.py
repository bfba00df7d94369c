"""CBF-QP filter on PD position targets held for one policy period (discrete-time barriers, Agrawal & Sreenath 2017).

    min_u  1/2 (u - u_pi)^T W (u - u_pi) + rho s^2
    s.t.   joint rows (position, velocity, torque; each substep of the period + look-ahead)  -> L <= u <= U
           Cartesian rows G u <= h + s (arms), s >= 0

The joint rows are separable per joint (safety/model.py), so with a diagonal W they reduce exactly to an interval per
joint and the QP without Cartesian rows is the projection `clip(u_pi, L, U)` (vectorized over environments). Cartesian
rows couple the joints: one violated row is solved in closed form, several with DAQP through its native API.
When the interval of a joint is empty the rows are relaxed in a fixed order (see `RELAX_LEVELS`); the level used is
telemetry, and the chain may replace the result by its backup.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

import daqp
import numpy as np

from robot_rl.contract import PolicyContract
from robot_rl.safety.config import CbfConfig, WorkspaceConfig
from robot_rl.safety.coupled import CoupledModel, CoupledRows
from robot_rl.safety.intervals import clip_into_intervals, joint_intervals, kernel_tables
from robot_rl.safety.kinematics import SerialChain
from robot_rl.safety.model import Rows, barrier_rows, interval_table, pd_response
from robot_rl.safety.protocol import Batch, Certified, row_norms
from robot_rl.state import RobotState

RELAX_LEVELS = ("dt_cbf", "safe_set", "no_torque", "slack")
"""0: all rows with gamma; 1: gamma = 1 (stay inside the limits); 2: drop torque rows; 3: the interval is still
empty: the min-max-violation target (midpoint of the crossed bounds), i.e. the large-penalty slack solution."""
SLACK_LEVEL = len(RELAX_LEVELS) - 1
"""The last level: an interval still empty after every relaxation."""

_LEVEL_NAMES = np.array(RELAX_LEVELS)
_STATUS_NAME = "<U10"
"""dtype of the per-robot `cbf/status` telemetry: a relaxation level, slack or infeasible."""
_SOLVER_NAME = "<U11"
"""dtype of the per-robot `cbf/solver` telemetry: interval, closed_form, daqp."""
_BIG = 1e20
_BIG_ONE, _ZERO_ONE = np.array([_BIG]), np.array([0.0])
"""The slack's bounds in DAQP's bound vectors."""

QpSet = tuple[CoupledRows, np.ndarray | None, np.ndarray | None, bool]
"""Rows a coupled target satisfies: (joint rows, Cartesian G, h, joint rows with slack)."""


@dataclass(slots=True)
class Box:
    """The joint intervals [lower, upper] (N, n) a target was clipped into."""

    lower: np.ndarray
    upper: np.ndarray

    def reference(self, q: np.ndarray) -> np.ndarray:
        return np.minimum(np.maximum(q, self.lower), self.upper)


@dataclass(slots=True)
class Projections:
    """The coupled rows each robot's target satisfies (None: the fallback target, no rows)."""

    cbf: CbfFilter
    qps: list[QpSet | None]

    def reference(self, q: np.ndarray) -> np.ndarray:
        return np.stack([qi if qp is None else self.cbf.project(qi, qp) for qi, qp in zip(q, self.qps)])


class CbfFilter:
    """Joint position / velocity / torque barriers and an optional Cartesian workspace for one robot model."""

    name = "cbf"

    def __init__(self, contract: PolicyContract, cfg: CbfConfig) -> None:
        self.cfg = cfg
        n = contract.num_joints
        self.n = n
        kp, kd = np.asarray(contract.kp, float), np.asarray(contract.kd, float)
        lower = np.asarray(contract.joint_pos_lower, float) + cfg.pos_margin
        upper = np.asarray(contract.joint_pos_upper, float) - cfg.pos_margin
        vmax = np.asarray(contract.joint_vel_limit, float) - cfg.vel_margin
        tau = np.asarray(contract.torque_limit, float)
        inertia = np.broadcast_to(np.asarray(cfg.joint_inertia, float), (n,))
        dist = np.broadcast_to(np.asarray(cfg.disturbance_torque, float), (n,))
        dec, dt = contract.decimation, 1.0 / contract.physics_rate_hz
        steps = (cfg.lookahead_periods + 1) * dec
        levels: list[Rows | None] = [None, None, None]
        self.coupled = CoupledModel(contract, cfg) if cfg.model == "coupled" else None
        """Mass-matrix model (arms): rows rebuilt per tick and solved with DAQP; None: per-joint interval tables."""
        self.response = pd_response(kp, kd, inertia, dt, steps, dist)
        for scale in (cfg.inertia_scales if self.coupled is None else [1.0]):
            resp = pd_response(kp, kd, inertia * scale, dt, steps, dist)
            for lv, (gamma, torque) in enumerate(((cfg.gamma, cfg.torque_rows), (1.0, cfg.torque_rows),
                                                  (1.0, False))):
                rows = barrier_rows(resp, kp, kd, lower, upper, vmax, tau, gamma, dec, cfg.lookahead_periods,
                                    torque)
                prev = levels[lv]
                levels[lv] = rows if prev is None else prev.concat(rows)
        self.rows: list[Rows] = [r for r in levels if r is not None]
        tables = [interval_table(r) for r in self.rows]
        r_max = max(t.shape[2] for t in tables)
        self.tables = [np.concatenate([t, _padding(r_max - t.shape[2], n)], axis=2) for t in tables]
        self.lower, self.upper = lower, upper
        self.weights = np.ones(n) if cfg.weights is None else np.broadcast_to(np.asarray(cfg.weights, float), (n,))
        self.uniform_weights = bool(np.all(self.weights == self.weights[0]))
        self._stacked = kernel_tables(self.tables)
        """(levels, n, 2, R, 3): what safety.intervals.joint_intervals reads."""
        self._buffers: dict[int, _Intervals] = {}
        """Interval-kernel buffers per batch size."""
        self.workspace = _Workspace(cfg.workspace, contract, self.response, dec, cfg.gamma) \
            if cfg.workspace is not None else None
        self._solves = self.workspace is not None or cfg.solver == "daqp"
        """Targets clipped into the intervals go on to the Cartesian rows / DAQP (else the clip is the answer)."""
        hess = np.zeros((n + 1, n + 1))
        hess[np.arange(n), np.arange(n)] = self.weights
        hess[n, n] = cfg.slack_penalty
        self._hess = hess
        self._f = np.zeros(n + 1)
        self._no_rows = np.zeros((0, n)), np.zeros(0)
        """G, h without Cartesian rows (solver daqp on the joint intervals alone)."""
        self._no_amat = np.zeros((0, n + 1))

    # ---- joint intervals -------------------------------------------------------------------------------------
    def interval(self, q: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
        """Target interval [L, U] per joint for one state (q, v), and the relaxation level that made it non-empty."""
        w = self._intervals(1)
        w.q[0], w.v[0] = q, v
        joint_intervals(self._stacked, w.q, w.v, w.lo, w.hi, w.level, SLACK_LEVEL)
        return w.lo[0].copy(), w.hi[0].copy(), int(w.level[0])

    def interval_tables(self) -> np.ndarray | None:
        """(levels, n, 2, R, 3) tables of `safety.intervals.joint_intervals` when this filter is exactly the
        clip into the joint intervals (decoupled model, no workspace, solver auto); None otherwise. A compiled chain
        reads them (safety/fast.py)."""
        if self.coupled is not None or self.workspace is not None or self.cfg.solver == "daqp":
            return None
        return self._stacked

    def _intervals(self, num: int) -> _Intervals:
        w = self._buffers.get(num)
        if w is None:
            w = self._buffers[num] = _Intervals(num, self.n)
        return w

    # ---- filter protocol -----------------------------------------------------------------------------------
    def certify(self, batch: Batch, targets: np.ndarray) -> Certified:
        q, v = batch.q, batch.v
        u_pi = np.asarray(targets, dtype=float)
        if self.coupled is not None:
            return self._certify_coupled_rows(q, v, u_pi)
        num = q.shape[0]
        out = np.empty((3, *u_pi.shape))
        ints = np.empty((2, num), np.int64)
        kernel_norm, feasible = np.empty(num), np.empty(num, dtype=bool)
        clip_into_intervals(self._stacked, np.ascontiguousarray(q), np.ascontiguousarray(v),
                            np.ascontiguousarray(u_pi), SLACK_LEVEL, out, ints, kernel_norm, feasible)
        lo, hi, u = out[0], out[1], out[2]  # indexing: unpacking iterates, which costs a microsecond
        level, active = ints[0], ints[1]
        slack, iters, solver = _interval_only(num)
        status = _LEVEL_NAMES[level]
        # one robot: the kernel's own sum (as the compiled leg path reports it); a batch: einsum over the rows
        norm = kernel_norm if num == 1 else None
        if self._solves:
            norm = None
            slack, iters, solver = slack.copy(), iters.copy(), solver.copy()
            status = status.astype(_STATUS_NAME)
            rows = np.flatnonzero(self.workspace.violated_batch(q, v, u)) if self.cfg.solver == "auto" and \
                self.workspace is not None else range(num)
            for i in rows:
                u[i], s, iters[i], solver[i], n_act, ok = self._coupled(q[i], v[i], u_pi[i], u[i], lo[i], hi[i])
                slack[i] = s
                if n_act:
                    active[i] += n_act
                if not ok:
                    status[i] = "infeasible"
                if s > 1e-6 and level[i] < SLACK_LEVEL:
                    status[i] = "slack"
                if not (s <= 1e-6 and ok):
                    feasible[i] = False
        if norm is None:
            norm = row_norms(u - u_pi)
        return Certified(u, {"cbf/active": active, "cbf/correction_norm": norm, "cbf/slack": slack,
                             "cbf/status": status, "cbf/level": level, "cbf/iterations": iters, "cbf/solver": solver,
                             "cbf/feasible": feasible},
                         feasible=Box(lo, hi))

    def commit(self, state: RobotState, applied: np.ndarray) -> dict[str, np.ndarray]:
        """The CBF keeps no state between ticks."""
        return {}

    def reset(self, mask: np.ndarray | None = None) -> None:
        """The CBF keeps no state between ticks."""

    # ---- coupled model (arms) ------------------------------------------------------------------------------------
    def _certify_coupled_rows(self, q: np.ndarray, v: np.ndarray, u_pi: np.ndarray) -> Certified:
        """The coupled model robot by robot (its matrices depend on each state)."""
        u = np.empty_like(u_pi)
        keys = ("cbf/active", "cbf/correction_norm", "cbf/slack", "cbf/status", "cbf/level", "cbf/iterations",
                "cbf/solver", "cbf/feasible")
        out: dict[str, list[Any]] = {k: [] for k in keys}
        qps: list[QpSet | None] = []
        for i in range(q.shape[0]):
            u[i], info, qp = self._certify_coupled(q[i], v[i], u_pi[i])
            qps.append(qp)
            for k in keys:
                out[k].append(info[k])
        return Certified(u, {k: np.asarray(val) for k, val in out.items()}, feasible=Projections(self, qps))

    def _certify_coupled(self, q: np.ndarray, v: np.ndarray,
                         u_pi: np.ndarray) -> tuple[np.ndarray, dict[str, Any], QpSet | None]:
        """Coupled rows of the mass-matrix model: check the clipped target, else DAQP level by level. Also returns
        the rows the target satisfies (None: none could be satisfied)."""
        assert self.coupled is not None
        levels = self.coupled.rows(q, v)
        u_box = np.minimum(np.maximum(u_pi, self.lower), self.upper)
        g = h = None
        if self.workspace is not None:
            g, h = self.workspace.rows(q, v, (levels[0].end_q, levels[0].end_u))
        u, slack, iters, solver, n_act, level = u_box, 0.0, 0, "interval", 0, SLACK_LEVEL
        ok = False
        qp: QpSet | None = None
        for lv, rows in enumerate(levels):
            ax = rows.a @ u_box
            if (g is None or h is None or np.all(g @ u_box <= h + 1e-9)) and np.all(ax >= rows.lower - 1e-9) \
                    and np.all(ax <= rows.upper + 1e-9):
                u, level, ok = u_box, lv, True
                qp = (rows, g, h, False)
                break
            res = self._solve(u_pi, rows, g, h, soft=False)
            if res is not None:
                u, slack, iters, n_act = res
                solver, level, ok = "daqp", lv, True
                qp = (rows, g, h, False)
                break
        if not ok:
            rows = levels[-1]
            res = self._solve(u_pi, rows, g, h, soft=True)
            solver = "daqp"
            if res is not None:
                u, slack, iters, n_act = res
                ok = True
                qp = (rows, g, h, True)
            else:
                u = np.minimum(np.maximum(q, self.lower), self.upper)
        status = RELAX_LEVELS[level] if ok else "infeasible"
        if slack > 1e-6 and level < SLACK_LEVEL:
            status = "slack"
        diff = u - u_pi
        return u, {"cbf/active": n_act + int(np.count_nonzero(u != u_pi)) * (solver == "interval"),
                   "cbf/correction_norm": float(np.sqrt(diff @ diff)), "cbf/slack": slack, "cbf/status": status,
                   "cbf/level": level, "cbf/iterations": iters, "cbf/solver": solver,
                   "cbf/feasible": level == 0 and slack <= 1e-6 and ok}, qp

    def _solve(self, u_pi: np.ndarray, rows: CoupledRows, g: np.ndarray | None, h: np.ndarray | None,
               soft: bool) -> tuple[np.ndarray, float, int, int] | None:
        """DAQP over [u, s]: joint rows hard (soft=False) or with the slack s; Cartesian rows always with s."""
        n = self.n
        blocks_a, blocks_lo, blocks_hi = [], [], []
        r = rows.a.shape[0]
        col = np.zeros((r, 1))
        if soft:
            blocks_a += [np.hstack([rows.a, col - 1.0]), np.hstack([rows.a, col + 1.0])]
            blocks_lo += [np.full(r, -_BIG), rows.lower]
            blocks_hi += [rows.upper, np.full(r, _BIG)]
        else:
            blocks_a.append(np.hstack([rows.a, col]))
            blocks_lo.append(rows.lower)
            blocks_hi.append(rows.upper)
        if g is not None and h is not None:
            blocks_a.append(np.hstack([g, -np.ones((g.shape[0], 1))]))
            blocks_lo.append(np.full(g.shape[0], -_BIG))
            blocks_hi.append(h)
        amat = np.concatenate(blocks_a)
        f = self._f
        f[:n] = -self.weights * u_pi
        bu = np.concatenate([self.upper, [_BIG], *blocks_hi])
        bl = np.concatenate([self.lower, [0.0], *blocks_lo])
        x, _, flag, info = daqp.solve(self._hess, f, amat, bu, bl)
        if flag < 0 or not np.all(np.isfinite(x)):
            return None
        lam = info["lam"]
        n_act = int(np.count_nonzero(np.abs(lam[n + 1:]) > 1e-12))
        return x[:n].copy(), float(max(x[n], 0.0)), int(info["iterations"]), n_act

    def project(self, point: np.ndarray, qp: QpSet) -> np.ndarray:
        """The target closest to `point` (n,) that satisfies the rows `qp` (point itself when DAQP fails)."""
        res = self._solve(point, *qp)
        return point if res is None else res[0]

    # ---- coupled rows ------------------------------------------------------------------------------------
    def _coupled(self, q: np.ndarray, v: np.ndarray, u_pi: np.ndarray, u_box: np.ndarray, lo: np.ndarray,
                 hi: np.ndarray) -> tuple[np.ndarray, float, int, str, int, bool]:
        """Add the Cartesian rows: box solution if they hold, closed form for one row, DAQP otherwise."""
        n = self.n
        if self.workspace is not None:
            g, h = self.workspace.rows(q, v)
        else:
            g, h = self._no_rows
        if self.cfg.solver == "auto":
            viol = g @ u_box > h + 1e-9
            nv = int(np.count_nonzero(viol))
            if nv == 0:
                return u_box, 0.0, 0, "interval", 0, True
            if nv == 1:
                a = g[viol][0]
                winv_a = a / self.weights
                lam = (a @ u_pi - h[viol][0]) / (a @ winv_a)
                u1 = u_pi - max(lam, 0.0) * winv_a
                if np.all(u1 >= lo - 1e-12) and np.all(u1 <= hi + 1e-12) and np.all(g @ u1 <= h + 1e-9):
                    return u1, 0.0, 0, "closed_form", 1, True
        m = g.shape[0]
        if m:
            amat = np.zeros((m, n + 1))
            amat[:, :n] = g
            amat[:, n] = -1.0
        else:
            amat = self._no_amat
        f = self._f
        f[:n] = -self.weights * u_pi
        bu = np.concatenate((hi, _BIG_ONE, h))
        bl = np.concatenate((lo, _ZERO_ONE, np.full(m, -_BIG) if m else h))
        x, _, flag, info = daqp.solve(self._hess, f, amat, bu, bl)
        if flag < 0 or not np.isfinite(x).all():
            return np.minimum(np.maximum(q, lo), hi), 0.0, 0, "daqp", 0, False
        u = x[:n]
        lam = info["lam"]
        n_act = int(np.count_nonzero(np.abs(lam[n + 1:]) > 1e-12)) if m else 0
        return u, float(max(x[n], 0.0)), int(info["iterations"]), "daqp", n_act, True


@functools.cache
def _interval_only(num: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """cbf/slack, cbf/iterations, cbf/solver of `num` robots clipped into their intervals (no QP); shared and
    read-only."""
    out = np.zeros(num), np.zeros(num, dtype=np.int64), np.full(num, "interval", dtype=_SOLVER_NAME)
    for a in out:
        a.flags.writeable = False
    return out


class _Intervals:
    """Preallocated inputs and outputs of the interval kernels for a batch of `num` robots."""

    def __init__(self, num: int, n: int) -> None:
        self.q, self.v, self.u_pi, self.u = (np.zeros((num, n)) for _ in range(4))
        self.lo, self.hi = np.zeros((num, n)), np.zeros((num, n))
        self.level, self.active = np.zeros(num, np.int64), np.zeros(num, np.int64)
        self.correction_sq = np.zeros(num)


def _padding(rows: int, n: int) -> np.ndarray:
    """Interval-table rows that bound nothing (K = +inf), to give every relaxation level the same shape."""
    pad = np.zeros((3, 2, rows, n))
    pad[0] = np.inf
    return pad


class _Workspace:
    """Cartesian half-space rows on the end effector, predicted through the Jacobian (end of period + settled)."""

    def __init__(self, cfg: WorkspaceConfig, contract: PolicyContract, resp: Any, decimation: int,
                 gamma: float) -> None:
        self.chain = SerialChain(cfg.urdf, cfg.ee_link, list(contract.joint_names), cfg.base_link, cfg.ee_offset)
        normals, offsets = [], []
        for k in range(3):
            e = np.zeros(3)
            e[k] = 1.0
            if cfg.upper is not None:
                normals.append(e)
                offsets.append(cfg.upper[k] - cfg.margin)
            if cfg.lower is not None:
                normals.append(-e)
                offsets.append(-cfg.lower[k] - cfg.margin)
        self.normals = np.array(normals).reshape(-1, 3)
        self.offsets = np.array(offsets)
        self.spheres = np.array(cfg.keep_out, dtype=float).reshape(-1, 4)
        self.margin = cfg.margin
        self.gamma = gamma
        self.a, self.b, self.c = resp.a[decimation], resp.b[decimation], resp.c[decimation]

    def halfspaces(self, p0: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Normals (..., k, 3) and offsets (..., k): n . p <= b; keep-out spheres linearized at p0."""
        batch = p0.shape[:-1]
        normals = np.broadcast_to(self.normals, (*batch, *self.normals.shape))
        offsets = np.broadcast_to(self.offsets, (*batch, self.offsets.shape[0]))
        if self.spheres.shape[0]:
            d = p0[..., None, :] - self.spheres[:, :3]
            e = d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-9)
            sn = -e
            sb = -np.einsum("...kj,kj->...k", e, self.spheres[:, :3]) - self.spheres[:, 3] - self.margin
            normals = np.concatenate([normals, sn], axis=-2)
            offsets = np.concatenate([offsets, sb], axis=-1)
        return normals, offsets

    def rows(self, q: np.ndarray, v: np.ndarray,
             end: tuple[np.ndarray, np.ndarray] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """G u <= h: end of this period (DT-CBF with gamma) and the settled pose (u held), batched over q.

        `end` = (q_end at u = 0, d q_end / d u) of the coupled model (one state); None: the per-joint response.
        """
        p0, jac = self.chain.forward(q)
        normals, offsets = self.halfspaces(p0)
        nj = normals @ jac  # (..., k, n)
        drift = self.a * q + self.b * v - q if end is None else end[0] - q
        np0 = np.einsum("...kj,...j->...k", normals, p0)
        h_end = self.gamma * offsets + (1 - self.gamma) * np0 - np0 - np.einsum("...kn,...n->...k", nj, drift)
        h_set = offsets - np0 + np.einsum("...kn,...n->...k", nj, q)
        g = np.concatenate([nj * self.c if end is None else nj @ end[1], nj], axis=-2)
        h = np.concatenate([h_end, h_set], axis=-1)
        return g, h

    def violated_batch(self, q: np.ndarray, v: np.ndarray, u: np.ndarray) -> np.ndarray:
        g, h = self.rows(q, v)
        return np.any(np.einsum("ikn,in->ik", g, u) > h + 1e-9, axis=1)
