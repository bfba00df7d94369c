"""The compiled step kernels give bit for bit what the numpy expressions they replaced give (a training run must not
change when the environment gets faster)."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_rl.sim.step_kernels import (
    quat_rotate_inverse,
    rotate_inverse_and_gravity,
    sensor_noise,
    swing_times,
    take_last_state,
)
from robot_rl.state import projected_gravity

SEEDS = st.integers(0, 2**32 - 1)


def _quats(rng: np.random.Generator, n: int) -> np.ndarray:
    q = rng.standard_normal((n, 4))
    return q / np.linalg.norm(q, axis=1, keepdims=True)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(SEEDS)
def test_sensor_noise_matches_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n, nj = 17, 12
    jp, jv, w = rng.standard_normal((n, nj)), rng.standard_normal((n, nj)), rng.standard_normal((n, 3))
    q = _quats(rng, n)
    jp_bias, w_bias = 0.01 * rng.standard_normal((n, nj)), 0.05 * rng.standard_normal((n, 3))
    jp_std, jv_std, w_std, q_std = (rng.uniform(0.0, 0.3, n) for _ in range(4))
    z = rng.standard_normal(n * (2 * nj + 7))
    out = [np.empty((n, nj)), np.empty((n, nj)), np.empty((n, 3)), np.empty((n, 4))]
    sensor_noise(jp, jv, w, q, jp_bias, jp_std, jv_std, w_bias, w_std, q_std, z, *out)
    zp, zv = z[:n * nj].reshape(n, nj), z[n * nj:2 * n * nj].reshape(n, nj)
    zw, zq = z[2 * n * nj:2 * n * nj + 3 * n].reshape(n, 3), z[2 * n * nj + 3 * n:].reshape(n, 4)
    ref_q = q + zq * q_std[:, None]
    ref_q /= np.linalg.norm(ref_q, axis=1, keepdims=True)
    np.testing.assert_array_equal(out[0], jp + jp_bias + zp * jp_std[:, None])
    np.testing.assert_array_equal(out[1], jv + zv * jv_std[:, None])
    np.testing.assert_array_equal(out[2], w + w_bias + zw * w_std[:, None])
    np.testing.assert_array_equal(out[3], ref_q)


@settings(max_examples=60, deadline=None, derandomize=True)
@given(SEEDS)
def test_frame_change_and_gravity_match_numpy(seed: int) -> None:
    rng = np.random.default_rng(seed)
    n = 23
    q, v = _quats(rng, n), 3.0 * rng.standard_normal((n, 3))
    out, gravity = np.empty((n, 3)), np.empty((n, 3))
    rotate_inverse_and_gravity(q, v, out, gravity)
    np.testing.assert_array_equal(out, quat_rotate_inverse(q, v))
    np.testing.assert_array_equal(gravity, projected_gravity(q))


def test_swing_times_match_the_numpy_bookkeeping() -> None:
    rng = np.random.default_rng(0)
    n, feet, dt = 9, 4, 0.02
    air, last = np.zeros((n, feet)), np.zeros((n, feet), bool)
    ref_air, ref_last = air.copy(), last.copy()
    landed = 0
    for _ in range(300):
        touch = np.where(rng.random((n, feet)) < 0.5, rng.uniform(2.0, 50.0, (n, feet)), 0.0)
        out, first = np.empty_like(air), np.empty_like(last)
        swing_times(touch, last, air, dt, out, first)
        contact = touch > 1.0  # the numpy form the environment used
        filt = contact | ref_last
        ref_first = (ref_air > 0.0) & filt
        ref_air += dt
        ref_out = ref_air.copy()
        ref_air *= ~filt
        ref_last[:] = contact
        np.testing.assert_array_equal(first, ref_first)
        np.testing.assert_array_equal(out, ref_out)
        np.testing.assert_array_equal(air, ref_air)
        np.testing.assert_array_equal(last, ref_last)
        landed += int(first.sum())
    assert landed > 100  # touch-downs happened, so both branches were compared


def test_take_last_state_copies_and_flags_every_kind_of_bad_row() -> None:
    rng = np.random.default_rng(1)
    n, steps, width, qv = 6, 4, 10, (4, 8)
    prev = np.zeros((n, width))
    out = rng.uniform(-5.0, 5.0, (n, steps, width))
    out[:, -1, 0] = 0.02  # time advanced by one policy step
    state = np.empty((n, width))
    assert take_last_state(out, state, prev, *qv, 1e3, 0.01)
    np.testing.assert_array_equal(state, out[:, -1])
    for row, col, value in ((2, 6, np.nan), (3, 1, np.inf), (4, 5, 2e3), (5, 0, 0.0)):  # NaN, inf, |qvel|, time
        bad = out.copy()
        bad[row, -1, col] = value
        assert not take_last_state(bad, state, prev, *qv, 1e3, 0.01)
    big_qpos = out.copy()
    big_qpos[1, -1, 2] = 2e3  # a large position is not a blow-up: only velocities are bounded
    assert take_last_state(big_qpos, state, prev, *qv, 1e3, 0.01)
