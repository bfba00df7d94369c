"""Per-joint target intervals of the separable CBF, compiled: one call per tick instead of a dozen numpy calls.

A control tick starts with cold caches, and there each numpy call costs several microseconds; the legged robots'
CBF is all intervals (safety/model.py `interval_table`), so it is one small loop. The arithmetic is the numpy
formulation's, operation for operation ((K - P q) - Q v, minimum over rows, NaN propagating), so the result is
bit-identical to it (tests/safety/test_safety_intervals.py keeps the numpy formulation as the reference).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, nogil=True)
def joint_intervals(tables: np.ndarray, q: np.ndarray, v: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                    level: np.ndarray, slack_level: int) -> None:
    """Intervals [lo, hi] (N, n) for states (q, v) (N, n) from `tables` (levels, 3, 2, R, n), and per row the
    relaxation level used: a joint whose interval is empty takes the next level's rows; when the last level is
    still empty, both bounds go to the midpoint and the row's level is `slack_level`."""
    n_levels, _, _, n_rows, n = tables.shape
    for e in range(q.shape[0]):
        deepest = 0
        for j in range(n):
            qj, vj = q[e, j], v[e, j]
            lj, hj = np.nan, np.nan
            for lv in range(n_levels):
                bnd = np.empty(2)
                for slot in range(2):
                    m = np.inf
                    for r in range(n_rows):
                        x = (tables[lv, 0, slot, r, j] - tables[lv, 1, slot, r, j] * qj) \
                            - tables[lv, 2, slot, r, j] * vj
                        if x != x or m != m:
                            m = np.nan
                        elif x < m:
                            m = x
                    bnd[slot] = m
                lj, hj = -bnd[1], bnd[0]
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


def table_bounds(table: np.ndarray, q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """[U, -L] (2, n) of one level's table (3, 2, R, n) for one state, in numpy: the formulation the kernels
    follow, kept as the readable reference (tests compare against it)."""
    return np.minimum.reduce((table[0] - table[1] * q) - table[2] * v, axis=1)


@njit(cache=True, nogil=True)
def leg_chain(q: np.ndarray, v: np.ndarray, raw: np.ndarray, prev: np.ndarray, has_prev: bool, step: np.ndarray,
              tables: np.ndarray, slack_level: int, box: np.ndarray, level: np.ndarray, u_rate: np.ndarray,
              u: np.ndarray, counts: np.ndarray, sums: np.ndarray) -> bool:
    """A rate limiter followed by the CBF's interval clip, for one robot whose inputs passed the sanity shield, in
    one call (safety/fast.py builds it from the two filters and checks it against them). The rate window is
    prev +- step (q +- step without a previous target); the CBF interval comes from `joint_intervals`. Returns
    False when the result is not finite (the caller then runs the filters, and the chain's backup). On success `u`
    holds the safe targets, `box` (2, n) the CBF interval, counts = (rate-limited joints, CBF-moved joints) and
    sums = (squared CBF correction, squared total correction)."""
    n = raw.shape[0]
    rate_active = 0
    for j in range(n):
        ref = prev[j] if has_prev else q[j]
        lo, hi = ref - step[j], ref + step[j]
        x = lo if raw[j] < lo else raw[j]
        x = hi if x > hi else x
        u_rate[j] = x
        if x != raw[j]:
            rate_active += 1
    joint_intervals(tables, q.reshape(1, n), v.reshape(1, n), box[0:1], box[1:2], level, slack_level)
    cbf_active, cbf_sq, total_sq = 0, 0.0, 0.0
    for j in range(n):
        a, low, high = u_rate[j], box[0, j], box[1, j]
        x = np.nan if low != low else (low if a < low else a)
        x = np.nan if x != x or high != high else (high if x > high else x)
        if x - x != 0.0:
            return False
        u[j] = x
        d = x - a
        if d != 0.0:
            cbf_active += 1
        cbf_sq += d * d
        c = x - raw[j]
        total_sq += c * c
    counts[0], counts[1] = rate_active, cbf_active
    sums[0], sums[1] = cbf_sq, total_sq
    return True
