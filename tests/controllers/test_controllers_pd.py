"""The joint PD + actuator law and its delay line, against hand-computed numbers."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.controllers import ActuatorParams, DelayLine, JointPD, actuator_coefficients, delayed_indices, pd_torque


def test_pd_torque_hand_computed() -> None:
    q, qd, q_des = np.array([0.0, 0.1, 1.0]), np.array([1.0, -2.0, 0.0]), np.array([0.5, 0.1, -1.0])
    # kp 20, kd 0.5, strength 0.9, limit 10: s*(kp*(q_des-q) - kd*qd)
    tau = pd_torque(q, qd, q_des, 20.0, 0.5, 0.9, 10.0)
    expected = [0.9 * (20 * 0.5 - 0.5), 0.9 * (0.0 + 1.0), -10.0]  # last one clipped from -36
    np.testing.assert_allclose(tau, expected)


def test_damping_mode_is_pure_velocity_feedback() -> None:
    tau = pd_torque(np.array([0.3]), np.array([2.0]), np.array([-1.0]), 0.0, 0.5, 1.1, 33.5)
    np.testing.assert_allclose(tau, [-1.1 * 0.5 * 2.0])


def test_actuator_coefficients_reproduce_law() -> None:
    rng = np.random.default_rng(0)
    kp, kd, s, lim = rng.uniform(5, 40, 12), rng.uniform(0.1, 2, 12), rng.uniform(0.8, 1.2, 12), np.full(12, 33.5)
    q, qd, qdes = rng.normal(size=12), rng.normal(size=12) * 5, rng.normal(size=12)
    gain, bias, frange = actuator_coefficients(kp, kd, s, lim)
    affine = np.clip(gain * qdes + bias[:, 0] + bias[:, 1] * q + bias[:, 2] * qd, frange[:, 0], frange[:, 1])
    np.testing.assert_allclose(affine, pd_torque(q, qd, qdes, kp, kd, s, lim))


def test_delay_line_shifts_by_delay_steps() -> None:
    line = DelayLine(1, delay=2)
    out = [float(line.push(np.array([x]))[0]) for x in (1.0, 2.0, 3.0, 4.0, 5.0)]
    assert out == [1.0, 1.0, 1.0, 2.0, 3.0]
    line0 = DelayLine(1, delay=0)
    assert [float(line0.push(np.array([x]))[0]) for x in (7.0, 8.0)] == [7.0, 8.0]
    with pytest.raises(ValueError):
        DelayLine(1, delay=-1)


def test_delayed_indices_match_a_physics_rate_delay_line() -> None:
    """Held targets at decimation 4 through the per-policy-step index table == a per-physics-step delay line."""
    dec = 4
    np.testing.assert_array_equal(delayed_indices(np.array([0, 1, 4, 5]), dec),
                                  [[0, 0, 0, 0], [1, 0, 0, 0], [1, 1, 1, 1], [2, 1, 1, 1]])
    for lat in range(0, 9):
        line = DelayLine(1, lat)
        targets = np.arange(1.0, 7.0)
        hist = np.zeros(8)  # policy-rate history, newest first, primed with the first target
        hist[:] = targets[0]
        idx = delayed_indices(np.array([lat]), dec)[0]
        for t in targets:
            hist[1:] = hist[:-1]
            hist[0] = t
            for j in range(dec):
                assert hist[idx[j]] == line.push(np.array([t]))[0]


def test_joint_pd_applies_latency_and_gains() -> None:
    pd = JointPD(ActuatorParams(kp=np.full(2, 10.0), kd=np.full(2, 1.0), torque_limit=np.full(2, 100.0), latency=1))
    z = np.zeros(2)
    np.testing.assert_allclose(pd.torque(z, z, np.full(2, 0.1)), [1.0, 1.0])
    np.testing.assert_allclose(pd.torque(z, z, np.full(2, 0.5)), [1.0, 1.0])  # still the previous target
    np.testing.assert_allclose(pd.torque(z, z, np.full(2, 0.5)), [5.0, 5.0])
    pd.set_gains(0.0, 2.0)
    np.testing.assert_allclose(pd.torque(z, np.ones(2), np.full(2, 0.5)), [-2.0, -2.0])
