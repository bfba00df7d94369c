"""The compiled interval kernels give exactly what the numpy formulation gives, relaxation and NaN included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_rl.contract import PolicyContract
from robot_rl.safety import RELAX_LEVELS, build_chain
from robot_rl.safety.cbf import CbfFilter
from robot_rl.safety.intervals import clip_to, joint_intervals, table_bounds

A1 = PolicyContract.load(Path(__file__).parents[1] / "ros" / "data" / "a1_walk" / "contract.json")
"""The trained A1 bundle's contract: its CBF entry (three inertia scales, torque rows, look-ahead) is the real one."""


def _filter(gamma: float = 1.0) -> CbfFilter:
    """The A1's CBF; gamma < 1 makes the first relaxation level (gamma = 1) reachable."""
    safety = [dict(e, gamma=gamma) if e["type"] == "cbf" else e for e in A1.safety]
    cbf = build_chain(A1.replace(safety=safety)).cbf
    assert cbf is not None
    return cbf


def _intervals(cbf: CbfFilter, q: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    lo, hi, level = np.zeros(q.shape), np.zeros(q.shape), np.zeros(q.shape[0], np.int64)
    joint_intervals(cbf._stacked, q, v, lo, hi, level, len(RELAX_LEVELS) - 1)
    return lo, hi, level


def _reference(cbf: CbfFilter, q: np.ndarray, v: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Per joint: the first level whose interval is non-empty, else the midpoint of the last level's bounds."""
    lo = hi = None
    level, bad = 0, None
    for lv, table in enumerate(cbf.tables):
        b = table_bounds(table, q, v)
        lo2, hi2 = -b[1], b[0]
        if lv == 0:
            lo, hi = lo2, hi2
        else:
            lo, hi = np.where(bad, lo2, lo), np.where(bad, hi2, hi)
            level = lv
        bad = lo > hi
        if not bad.any():
            return lo, hi, level
    mid = 0.5 * (lo + hi)
    return np.where(bad, mid, lo), np.where(bad, mid, hi), len(RELAX_LEVELS) - 1


CBF = {gamma: _filter(gamma) for gamma in (1.0, 0.2)}


@settings(max_examples=100, deadline=None, derandomize=True)
@given(st.integers(0, 2**32 - 1), st.floats(0.1, 6.0), st.sampled_from([1.0, 0.2]))
def test_kernel_matches_numpy_bit_for_bit(seed: int, spread: float, gamma: float) -> None:
    """Random states from well inside the limits to far outside the velocity limits."""
    cbf = CBF[gamma]
    rng = np.random.default_rng(seed)
    lower, upper = cbf.lower, cbf.upper
    num, n = 6, cbf.n
    q = lower + rng.uniform(-0.1, 1.1, (num, n)) * (upper - lower)
    v = spread * rng.standard_normal((num, n))
    lo, hi, level = _intervals(cbf, q, v)
    for e in range(num):
        ref_lo, ref_hi, ref_level = _reference(cbf, q[e], v[e])
        np.testing.assert_array_equal(lo[e], ref_lo)
        np.testing.assert_array_equal(hi[e], ref_hi)
        assert level[e] == ref_level
    u_pi = q + rng.uniform(-0.5, 0.5, (num, n))
    u, active, corr = np.zeros((num, n)), np.zeros(num, np.int64), np.zeros(num)
    clip_to(u_pi, lo, hi, u, active, corr)
    ref_u = np.minimum(np.maximum(u_pi, lo), hi)
    np.testing.assert_array_equal(u, ref_u)
    np.testing.assert_array_equal(active, np.count_nonzero(ref_u != u_pi, axis=1))
    np.testing.assert_allclose(corr, np.square(ref_u - u_pi).sum(axis=1), rtol=1e-12)


def test_relaxation_levels_match_numpy_and_nan_propagates() -> None:
    """A batch that reaches level 0 (dt_cbf), 1 (safe_set) and 3 (slack: empty at every level) on the same rows as
    the numpy formulation. (The A1's torque rows never empty an interval on their own, so level 2 stays unused.)"""
    cbf = CBF[0.2]
    rng = np.random.default_rng(0)
    num, n = 2000, cbf.n
    q = cbf.lower + rng.uniform(-0.05, 1.05, (num, n)) * (cbf.upper - cbf.lower)
    v = 3.0 * rng.standard_normal((num, n))
    lo, hi, level = _intervals(cbf, q, v)
    counts = np.bincount(level, minlength=4)
    assert counts[0] > 0 and counts[1] > 0 and counts[3] > 0
    for e in range(0, num, 7):
        ref_lo, ref_hi, ref_level = _reference(cbf, q[e], v[e])
        np.testing.assert_array_equal(lo[e], ref_lo)
        np.testing.assert_array_equal(hi[e], ref_hi)
        assert level[e] == ref_level
    assert np.all(lo <= hi)
    mid_q = 0.5 * (cbf.lower + cbf.upper)
    q = mid_q[None].copy()
    q[0, 2] = np.nan
    lo, hi, level = _intervals(cbf, q, np.zeros((1, n)))
    assert np.isnan(lo[0, 2]) and np.isnan(hi[0, 2]) and np.all(np.isfinite(np.delete(lo[0], 2)))
    u, active, corr = np.zeros((1, n)), np.zeros(1, np.int64), np.zeros(1)
    clip_to(mid_q[None], lo, hi, u, active, corr)
    assert np.isnan(u[0, 2]) and np.isnan(corr[0]) and active[0] >= 1
