"""Shields: NaN, wrong length, stale state and e-stop give the backup on the same tick; latches hold until reset."""

from __future__ import annotations

import numpy as np
import pytest
from safety_harness import build_robot

from robot_rl.safety import build_chain
from robot_rl.state import RobotState

CHAIN = [{"type": "sanity"}, {"type": "state", "max_tilt": 0.8, "max_state_age": 0.1, "max_repeated_states": 2,
                               "min_base_height": 0.15, "backup": "damping"},
         {"type": "rate_limit", "max_rate": 5.0}, {"type": "cbf", "joint_inertia": 0.03}, {"type": "passivity"}]


def _state(c, t=0.0, quat=(1.0, 0.0, 0.0, 0.0), q=None, height=0.3):
    q = np.asarray(c.default_joint_pos) if q is None else q
    return RobotState(joint_pos=np.asarray(q, float), joint_vel=np.zeros(len(q)), base_quat=np.asarray(quat, float),
                      base_ang_vel=np.zeros(3), base_lin_acc=np.zeros(3), timestamp=t,
                      base_pos=np.array([0.0, 0.0, height]))


@pytest.fixture
def setup():
    c = build_robot("a1").contract.replace(safety=CHAIN)
    return c, build_chain(c)


@pytest.mark.parametrize("targets,why", [
    (lambda n: np.full(n, np.nan), "NaN"),
    (lambda n: np.zeros(n - 1), "shape"),
    (lambda n: np.full(n, 1e6), "out of range"),
    (lambda n: "garbage", "not numeric"),
    (lambda n: None, "shape"),
])
def test_bad_targets_give_backup_same_tick(setup, targets, why):
    c, chain = setup
    st = _state(c)
    u, info = chain.certify(st, targets(c.num_joints))
    assert info["safety/backup"] and why in info["safety/reason"]
    np.testing.assert_allclose(u, st.joint_pos)
    assert info["safety/damping"]
    assert not info["safety/latched"]
    u2, info2 = chain.certify(_state(c, t=0.02), np.asarray(c.default_joint_pos))
    assert not info2["safety/backup"]


@pytest.mark.parametrize("make,why", [
    (lambda c: _state(c, quat=(np.cos(0.5), np.sin(0.5), 0.0, 0.0)), "tilt"),
    (lambda c: _state(c, height=0.05), "base height"),
    (lambda c: _state(c, q=np.full(c.num_joints, np.nan)), "state joint_pos"),
    (lambda c: _state(c, q=np.zeros(3)), "state joint_pos"),
])
def test_bad_state(setup, make, why):
    c, chain = setup
    u, info = chain.certify(make(c), np.asarray(c.default_joint_pos))
    assert info["safety/backup"] and why in info["safety/reason"]
    assert np.all(np.isfinite(u)) and u.shape == (c.num_joints,)


def test_stale_state_latches_until_reset(setup):
    c, chain = setup
    target = np.asarray(c.default_joint_pos)
    _, info = chain.certify(_state(c, t=1.0), target, now=1.5)
    assert info["safety/backup"] and "old" in info["safety/reason"] and info["safety/latched"]
    for k in range(5):  # fresh, healthy states: the latch holds
        _, info = chain.certify(_state(c, t=2.0 + 0.02 * k), target, now=2.0 + 0.02 * k)
        assert info["safety/backup"] and info["safety/latched"]
    chain.reset()
    _, info = chain.certify(_state(c, t=3.0), target, now=3.0)
    assert not info["safety/backup"]


def test_repeated_timestamp_is_stale(setup):
    c, chain = setup
    target = np.asarray(c.default_joint_pos)
    fired = [chain.certify(_state(c, t=5.0), target)[1]["safety/backup"] for _ in range(4)]
    assert fired == [False, False, False, True]


def test_estop_latches_until_reset(setup):
    c, chain = setup
    target = np.asarray(c.default_joint_pos)
    chain.estop("operator")
    st = _state(c)
    u, info = chain.certify(st, target)
    assert info["safety/backup"] and "operator" in info["safety/reason"] and info["safety/damping"]
    np.testing.assert_allclose(u, st.joint_pos)
    assert chain.certify(_state(c, t=0.02), target)[1]["safety/latched"]
    chain.reset()
    assert not chain.certify(_state(c, t=0.04), target)[1]["safety/backup"]


def test_rate_limit_and_correction_telemetry(setup):
    c, chain = setup
    st = _state(c)
    target = np.asarray(c.default_joint_pos) + 0.5
    u, info = chain.certify(st, target)
    step = 5.0 * c.policy_dt
    assert np.all(u - st.joint_pos <= step + 1e-12)
    np.testing.assert_allclose(info["safety/correction"], u - target)
    assert info["safety/intervened"] and info["rate_limit/active"] == c.num_joints


def test_batch_shields_and_never_raises(setup):
    c, chain = setup
    n, num = c.num_joints, 6
    q = np.tile(c.default_joint_pos, (num, 1))
    quat = np.tile([1.0, 0, 0, 0], (num, 1))
    quat[2] = [np.cos(0.5), np.sin(0.5), 0, 0]
    st = RobotState(joint_pos=q, joint_vel=np.zeros((num, n)), base_quat=quat, base_ang_vel=np.zeros((num, 3)),
                    base_lin_acc=np.zeros((num, 3)), timestamp=np.zeros(num), base_pos=np.tile([0, 0, 0.3], (num, 1)))
    targets = q.copy()
    targets[1, 3] = np.nan
    u, info = chain.certify_batch(st, targets)
    assert list(np.flatnonzero(info["safety/backup"])) == [1, 2]
    assert list(np.flatnonzero(info["safety/latched"])) == [2]
    assert np.all(np.isfinite(u))
    for bad in (targets[:, :3], "x", None, np.full((num, n), np.inf)):
        u, info = chain.certify_batch(st, bad)
        assert u.shape == (num, n) and np.all(info["safety/backup"])
    chain.reset(mask=np.array([False, False, True, False, False, False]))
    st.base_quat[2] = [1.0, 0, 0, 0]
    st.timestamp = np.full(num, 0.02)
    _, info = chain.certify_batch(st, q)
    assert not info["safety/backup"].any()
