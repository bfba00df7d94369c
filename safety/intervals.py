"""Per-joint target intervals of the separable CBF, compiled: one call per tick instead of a dozen numpy calls.

A control tick starts with cold caches, and there each numpy call costs several microseconds; the legged robots'
CBF is all intervals (safety/model.py `interval_table`), so it is one small loop. The arithmetic is the numpy
formulation's, operation for operation ((K - P q) - Q v, minimum over rows, NaN propagating), so the result is
bit-identical to it (tests/safety/test_safety_intervals.py keeps the numpy formulation as the reference).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True, inline="always")
def _bound(tables: np.ndarray, lv: int, slot: int, j: int, qj: float, vj: float, n_rows: int) -> float:
    """min over rows r of (K - P qj) - Q vj for one level, side (0: U, 1: -L) and joint; NaN propagates. Four rows
    per step into four running minima (independent chains the CPU overlaps); a minimum does not depend on the
    order its values are taken in."""
    t = tables[lv, j, slot]
    m0 = m1 = m2 = m3 = np.inf
    nan = False
    r = 0
    while r + 4 <= n_rows:
        x0 = (t[r, 0] - t[r, 1] * qj) - t[r, 2] * vj
        x1 = (t[r + 1, 0] - t[r + 1, 1] * qj) - t[r + 1, 2] * vj
        x2 = (t[r + 2, 0] - t[r + 2, 1] * qj) - t[r + 2, 2] * vj
        x3 = (t[r + 3, 0] - t[r + 3, 1] * qj) - t[r + 3, 2] * vj
        nan |= (x0 != x0) | (x1 != x1) | (x2 != x2) | (x3 != x3)
        m0 = x0 if x0 < m0 else m0
        m1 = x1 if x1 < m1 else m1
        m2 = x2 if x2 < m2 else m2
        m3 = x3 if x3 < m3 else m3
        r += 4
    while r < n_rows:
        x0 = (t[r, 0] - t[r, 1] * qj) - t[r, 2] * vj
        nan |= x0 != x0
        m0 = x0 if x0 < m0 else m0
        r += 1
    m0 = m1 if m1 < m0 else m0
    m2 = m3 if m3 < m2 else m2
    m0 = m2 if m2 < m0 else m0
    return np.nan if nan else m0


@njit(cache=True, nogil=True)
def joint_intervals(tables: np.ndarray, q: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    level: np.ndarray, slack_level: int) -> None:
    """Intervals [lo, hi] (N, n) for states (q, v) (N, n) from `tables` (levels, n, 2, R, 3) (`kernel_tables`: one
    joint's rows contiguous), and per row the
    relaxation level used: a joint whose interval is empty takes the next level's rows; when the last level is
    still empty, both bounds go to the midpoint and the row's level is `slack_level`."""
    n_levels, n, _, n_rows, _ = tables.shape
    for e in range(q.shape[0]):
        deepest = 0
        for j in range(n):
            qj, vj = q[e, j], v[e, j]
            lj, hj = np.nan, np.nan
            for lv in range(n_levels):
                upper = _bound(tables, lv, 0, j, qj, vj, n_rows)
                neg_lower = _bound(tables, lv, 1, j, qj, vj, n_rows)
                lj, hj = -neg_lower, upper
                if not lj > hj:  # non-empty, or NaN (the chain's finiteness check catches that)
                    if lv > deepest:
                        deepest = lv
                    break
            else:
                mid = 0.5 * (lj + hj)
                lj, hj = mid, mid
                deepest = slack_level
            lo[e, j], hi[e, j] = lj, hj
        level[e] = deepest


@njit(cache=True, nogil=True)
def clip_to(u_pi: np.ndarray, lo: np.ndarray, hi: np.ndarray, u: np.ndarray, active: np.ndarray,
            correction_sq: np.ndarray) -> None:
    """u = min(max(u_pi, lo), hi) (N, n), with the number of moved targets and the squared correction per row."""
    for e in range(u_pi.shape[0]):
        count, sq = 0, 0.0
        for j in range(u_pi.shape[1]):
            a, low, high = u_pi[e, j], lo[e, j], hi[e, j]
            x = np.nan if a != a or low != low else (low if a < low else a)  # np.maximum: NaN propagates
            x = np.nan if x != x or high != high else (high if x > high else x)
            u[e, j] = x
            d = x - u_pi[e, j]
            if d != 0.0:
                count += 1
            sq += d * d
        active[e] = count
        correction_sq[e] = sq


@njit(cache=True, nogil=True)
def clip_into_intervals(tables: np.ndarray, q: np.ndarray, v: np.ndarray, u_pi: np.ndarray, slack_level: int,
                        out: np.ndarray, ints: np.ndarray, norm: np.ndarray, feasible: np.ndarray) -> None:
    """`joint_intervals` then `clip_to` in one call (a batch of one pays one dispatch, not two): out = (lower, upper,
    clipped targets) (3, N, n), ints = (relaxation level, moved targets) (2, N), norm = sqrt of `clip_to`'s squared
    correction per row, and feasible = (level == 0)."""
    joint_intervals(tables, q, v, out[0], out[1], ints[0], slack_level)
    clip_to(u_pi, out[0], out[1], out[2], ints[1], norm)
    for e in range(q.shape[0]):
        norm[e] = np.sqrt(norm[e])
        feasible[e] = ints[0, e] == 0


def kernel_tables(tables: list[np.ndarray]) -> np.ndarray:
    """The per-level interval tables (3, 2, R, n) of safety/model.py stacked in the layout the kernels read:
    (levels, n, 2, R, 3), so that one joint's rows are contiguous in memory."""
    return np.ascontiguousarray(np.stack(tables).transpose(0, 4, 2, 3, 1))


def table_bounds(table: np.ndarray, q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[U, -L] (2, n) of one level's table (3, 2, R, n) for one state, in numpy: the formulation the kernels
    follow, kept as the readable reference (tests compare against it)."""
    return np.minimum.reduce((table[0] - table[1] * q) - table[2] * v, axis=1)
