"""CBF-QP: every barrier row holds when feasible, the fallback is the documented one, DAQP = quadprog = closed form."""

from __future__ import annotations

import numpy as np
import quadprog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from safety_harness import IIWA_URDF, build_robot, certify_one

from robot_rl.safety import RELAX_LEVELS, Batch, build_chain
from robot_rl.safety.intervals import table_bounds
from robot_rl.state import RobotState

A1 = build_robot("a1")
CFG = {"type": "cbf", "joint_inertia": A1.inertia.tolist(), "gamma": 0.5, "disturbance_torque": 0.5}
CHAIN = build_chain(A1.contract.replace(safety=[CFG]))
DAQP = build_chain(A1.contract.replace(safety=[{**CFG, "solver": "daqp"}]))
N = A1.contract.num_joints
LO, HI = np.asarray(A1.contract.joint_pos_lower), np.asarray(A1.contract.joint_pos_upper)
VMAX = np.asarray(A1.contract.joint_vel_limit)


def _state(q, v):
    return RobotState(joint_pos=q, joint_vel=v, base_quat=np.array([1.0, 0, 0, 0]), base_ang_vel=np.zeros(3),
                      base_lin_acc=np.zeros(3))


unit = st.lists(st.floats(0.0, 1.0), min_size=N, max_size=N).map(np.array)
signed = st.lists(st.floats(-1.0, 1.0), min_size=N, max_size=N).map(np.array)
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow])


def _quadprog(g, h, u_pi):
    """min 1/2 |u - u_pi|^2 s.t. g u <= h with quadprog (G x >= b convention)."""
    return quadprog.solve_qp(np.eye(N), u_pi, -g.T, -h)[0]


@SETTINGS
@given(unit, signed, signed)
def test_certified_target_satisfies_every_row(qf, vf, af):
    q = LO + qf * (HI - LO)
    v = 0.5 * vf * VMAX
    u_pi = q + 1.5 * af * (HI - LO)
    u, info, _ = certify_one(CHAIN.cbf, _state(q, v), u_pi)
    cbf = CHAIN.cbf
    level = info["cbf/level"]
    if level < len(RELAX_LEVELS) - 1:
        g, h = cbf.rows[level].explicit(q, v)
        assert np.all(g @ u <= h + 1e-8), "a barrier row of the reported level is violated"
        assert np.all(u >= cbf.lower - 1e-12) and np.all(u <= cbf.upper + 1e-12), "target box violated"
    if level == 0:
        assert info["cbf/status"] == "dt_cbf" and info["cbf/feasible"]
        # the interval projection is the QP optimum: quadprog on the full row set and DAQP agree
        g, h = cbf.rows[0].explicit(q, v)
        np.testing.assert_allclose(u, _quadprog(g, h, u_pi), atol=1e-7)
        u_d, info_d, _ = certify_one(DAQP.cbf, _state(q, v), u_pi)
        assert info_d["cbf/solver"] == "daqp"
        np.testing.assert_allclose(u_d, u, atol=1e-7)
    else:
        assert not info["cbf/feasible"] and info["cbf/status"] == RELAX_LEVELS[level]


@SETTINGS
@given(unit, signed)
def test_infeasible_states_use_the_documented_fallback(qf, vf):
    """States far outside the velocity limits: relaxation order dt_cbf -> safe_set -> no_torque -> slack."""
    q = LO + qf * (HI - LO)
    v = 4.0 * vf * VMAX
    u, info, _ = certify_one(CHAIN.cbf, _state(q, v), q)
    cbf = CHAIN.cbf
    lo, hi, level = cbf.interval(q, v)
    assert info["cbf/level"] == level
    if level == len(RELAX_LEVELS) - 1:
        assert info["cbf/status"] == "slack"
        empty = np.ones(N, dtype=bool)  # joints whose interval is empty at every level
        for tab_level in range(len(cbf.tables)):
            b = table_bounds(cbf.tables[tab_level], q, v)
            empty &= -b[1] > b[0]
        b = table_bounds(cbf.tables[-1], q, v)
        mid = 0.5 * (-b[1] + b[0])
        np.testing.assert_allclose(u[empty], mid[empty])
    assert np.all(np.isfinite(u))


def test_batch_equals_single():
    rng = np.random.default_rng(0)
    num = 32
    q = LO + rng.uniform(0, 1, (num, N)) * (HI - LO)
    v = rng.uniform(-1.5, 1.5, (num, N)) * VMAX
    _assert_batch_equals_single(CHAIN.cbf, q, v, q + rng.uniform(-1, 1, (num, N)))


def _assert_batch_equals_single(cbf, q, v, u_pi):
    num = q.shape[0]
    bst = RobotState(joint_pos=q, joint_vel=v, base_quat=np.tile([1.0, 0, 0, 0], (num, 1)),
                     base_ang_vel=np.zeros((num, 3)), base_lin_acc=np.zeros((num, 3)))
    res = cbf.certify(Batch(q, v), u_pi)
    ub, info = res.targets, res.info
    for i in range(num):
        us, infos, _ = certify_one(cbf, bst.index(i), u_pi[i])
        np.testing.assert_allclose(ub[i], us, atol=1e-12)
        assert info["cbf/level"][i] == infos["cbf/level"]


def test_one_step_prediction_matches_hand_computed_double_integrator_limit():
    """kd = 0, huge inertia: q_D ~ q0 + v0 T, so the position row is q0 + v0 T <= upper for u near q0."""
    c = A1.contract.replace(kp=[1e-3] * N, kd=[0.0] * N, safety=[{"type": "cbf", "joint_inertia": 1e6,
                                                                  "torque_rows": False, "lookahead_periods": 0}])
    chain = build_chain(c)
    resp = chain.cbf.response
    d = c.decimation
    np.testing.assert_allclose(resp.a[d], 1.0, atol=1e-9)
    np.testing.assert_allclose(resp.b[d], c.policy_dt, rtol=1e-6)


ARM = build_robot("iiwa")
WS = {"urdf": IIWA_URDF, "ee_link": "lbr_iiwa_link_7", "ee_offset": [0.0, 0.0, 0.05],
      "lower": [-0.6, -0.6, 0.3], "upper": [0.6, 0.6, 1.2], "keep_out": [[0.35, 0.0, 0.9, 0.12]], "margin": 0.0}


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7).map(np.array),
       st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7).map(np.array))
def test_workspace_rows_hold_and_daqp_matches_quadprog(qf, af):
    c = ARM.contract
    lo, hi = np.asarray(c.joint_pos_lower), np.asarray(c.joint_pos_upper)
    q = lo + qf * (hi - lo)
    v = np.zeros(7)
    chain = build_chain(c.replace(safety=[{"type": "cbf", "joint_inertia": ARM.inertia.tolist(), "workspace": WS}]))
    cbf = chain.cbf
    u_pi = q + 0.8 * af
    u, info, res = certify_one(cbf, _state(q, v), u_pi)
    if info["cbf/level"] != 0:
        return
    g, h = cbf.workspace.rows(q, v)
    lo_b, hi_b = res.feasible.lower[0], res.feasible.upper[0]
    assert np.all(u >= lo_b - 1e-7) and np.all(u <= hi_b + 1e-7)
    if info["cbf/slack"] <= 1e-6:
        assert np.all(g @ u <= h + 1e-6)
        # same QP with quadprog: box + Cartesian rows
        gg = np.vstack([g, np.eye(7), -np.eye(7)])
        hh = np.concatenate([h, hi_b, -lo_b])
        try:
            ref = quadprog.solve_qp(np.eye(7), u_pi, -gg.T, -hh)[0]
        except ValueError:
            return
        np.testing.assert_allclose(u, ref, atol=1e-5)
    else:
        assert info["cbf/status"] == "slack"


COUPLED = {"type": "cbf", "model": "coupled", "urdf": IIWA_URDF, "armature": 0.01, "gamma": 0.5,
           "pos_margin": 0.02, "vel_margin": 0.3}
ARM_CHAIN = build_chain(ARM.contract.replace(safety=[COUPLED]))


@settings(max_examples=60, deadline=None, derandomize=True)
@given(st.lists(st.floats(0.0, 1.0), min_size=7, max_size=7).map(np.array),
       st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7).map(np.array),
       st.lists(st.floats(-1.0, 1.0), min_size=7, max_size=7).map(np.array))
def test_coupled_rows_hold_and_daqp_matches_quadprog(qf, vf, af):
    """Coupled model: the certified target satisfies every row of its level; at level 0 it is the QP optimum."""
    c = ARM.contract
    lo, hi = np.asarray(c.joint_pos_lower), np.asarray(c.joint_pos_upper)
    q = lo + qf * (hi - lo)
    v = 0.8 * vf * np.asarray(c.joint_vel_limit)
    u_pi = q + 1.5 * af
    cbf = ARM_CHAIN.cbf
    u, info, _ = certify_one(cbf, _state(q, v), u_pi)
    level = info["cbf/level"]
    assert np.all(np.isfinite(u))
    if level == len(RELAX_LEVELS) - 1:
        assert info["cbf/status"] == "slack" and not info["cbf/feasible"]
        return
    rows = cbf.coupled.rows(q, v)[level]
    au = rows.a @ u
    assert np.all(au >= rows.lower - 1e-6) and np.all(au <= rows.upper + 1e-6), "a coupled row is violated"
    assert np.all(u >= cbf.lower - 1e-9) and np.all(u <= cbf.upper + 1e-9)
    if level == 0:
        assert info["cbf/feasible"]
        gg = np.vstack([rows.a, -rows.a, np.eye(7), -np.eye(7)])
        hh = np.concatenate([rows.upper, -rows.lower, cbf.upper, -cbf.lower])
        ref = quadprog.solve_qp(np.eye(7), u_pi, -gg.T, -hh)[0]
        np.testing.assert_allclose(u, ref, atol=1e-5)


def test_coupled_prediction_with_diagonal_mass_equals_per_joint_response():
    """With M = diag(I) and no bias the coupled system is the per-joint one: same affine coefficients."""
    c = ARM.contract
    chain = build_chain(c.replace(safety=[{**COUPLED, "disturbance_torque": 0.3}]))
    model = chain.cbf.coupled
    inertia = np.linspace(0.05, 2.0, 7)
    q, v = np.linspace(-0.5, 0.5, 7), np.linspace(1.0, -1.0, 7)
    mean, du, dev, tdev = model._trajectory(np.diag(inertia), np.zeros(7), q, v)
    from robot_rl.safety.model import pd_response

    dec = c.decimation
    resp = pd_response(np.asarray(c.kp), np.asarray(c.kd), inertia, 1.0 / c.physics_rate_hz,
                       (model.lookahead + 1) * dec, np.full(7, 0.3))
    times = list(range(dec + 1)) + [dec * (k + 1) for k in range(1, model.lookahead + 1)]
    for row, t in enumerate(times):
        np.testing.assert_allclose(mean[row, :7], resp.a[t] * q + resp.b[t] * v, atol=1e-9)
        np.testing.assert_allclose(mean[row, 7:], resp.d[t] * q + resp.e[t] * v, atol=1e-9)
        np.testing.assert_allclose(du[row, :7], np.diag(resp.c[t]), atol=1e-9)
        np.testing.assert_allclose(du[row, 7:], np.diag(resp.f[t]), atol=1e-9)
        np.testing.assert_allclose(dev[row, :7], resp.mq[t], atol=1e-9)
        np.testing.assert_allclose(dev[row, 7:], resp.mv[t], atol=1e-9)
        np.testing.assert_allclose(tdev[row], resp.mtau[t], atol=1e-9)


def test_coupled_batch_equals_single():
    c = ARM.contract
    rng = np.random.default_rng(2)
    lo, hi = np.asarray(c.joint_pos_lower), np.asarray(c.joint_pos_upper)
    num = 4
    q = rng.uniform(lo, hi, (num, 7))
    v = rng.uniform(-1.0, 1.0, (num, 7))
    _assert_batch_equals_single(ARM_CHAIN.cbf, q, v, q + rng.uniform(-1, 1, (num, 7)))
