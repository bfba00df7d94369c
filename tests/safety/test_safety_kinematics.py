"""URDF serial-chain kinematics (numpy, no simulator) against PyBullet forward kinematics and finite differences."""

from __future__ import annotations

import numpy as np
import pybullet as p
from safety_harness import IIWA_URDF

from robot_rl.safety import SerialChain

NAMES = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]


def test_fk_matches_pybullet_and_jacobian_matches_finite_differences():
    chain = SerialChain(IIWA_URDF, "lbr_iiwa_link_7", NAMES, ee_offset=[0.0, 0.0, 0.1])
    cid = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(IIWA_URDF, useFixedBase=True, physicsClientId=cid)
        rng = np.random.default_rng(0)
        qs = rng.uniform(-2.0, 2.0, (10, 7))
        pos, jac = chain.forward(qs)
        for q, pk in zip(qs, pos):
            for j in range(7):
                p.resetJointState(body, j, q[j], physicsClientId=cid)
            ls = p.getLinkState(body, 6, computeForwardKinematics=True, physicsClientId=cid)
            rot = np.array(p.getMatrixFromQuaternion(ls[5])).reshape(3, 3)
            ref = np.array(ls[4]) + rot @ np.array([0.0, 0.0, 0.1])
            np.testing.assert_allclose(pk, ref, atol=1e-6)
        eps = 1e-6
        for k in range(7):
            dq = np.zeros(7)
            dq[k] = eps
            fd = (chain.forward(qs + dq)[0] - chain.forward(qs - dq)[0]) / (2 * eps)
            np.testing.assert_allclose(jac[:, :, k], fd, atol=1e-6)
    finally:
        p.disconnect(cid)


def test_mass_matrix_and_bias_match_mujoco_and_pybullet():
    """CRBA M(q) + armature = mj_fullM; Newton-Euler c(q, q') + g(q) = qfrc_bias; M = calculateMassMatrix."""
    import mujoco
    from safety_harness import build_robot

    from robot_rl.safety.kinematics import JointSpaceDynamics

    robot = build_robot("iiwa")
    m, d = robot.model, robot.data
    m.body_gravcomp[:] = 0.0  # qfrc_bias carries gravity either way; compare the plain arm
    dyn = JointSpaceDynamics(IIWA_URDF, NAMES, armature=0.01, gravity=[0.0, 0.0, -9.81])
    no_arm = JointSpaceDynamics(IIWA_URDF, NAMES)
    cid = p.connect(p.DIRECT)
    try:
        body = p.loadURDF(IIWA_URDF, useFixedBase=True, flags=p.URDF_USE_INERTIA_FROM_FILE, physicsClientId=cid)
        p.setGravity(0, 0, -9.81, physicsClientId=cid)
        rng = np.random.default_rng(1)
        for _ in range(10):
            q, v = rng.uniform(-2.0, 2.0, 7), rng.uniform(-2.0, 2.0, 7)
            d.qpos[:], d.qvel[:] = q, v
            mujoco.mj_forward(m, d)
            full = np.zeros((7, 7))
            mujoco.mj_fullM(m, d, full)
            mass, bias = dyn.evaluate(q, v)
            np.testing.assert_allclose(mass, full, atol=1e-10)
            np.testing.assert_allclose(bias, d.qfrc_bias, atol=1e-9)
            np.testing.assert_allclose(dyn.mass_matrix(q), mass, atol=1e-14)
            np.testing.assert_allclose(dyn.bias(q, v), bias, atol=1e-14)
            pb_mass = np.array(p.calculateMassMatrix(body, q.tolist(), physicsClientId=cid))
            np.testing.assert_allclose(no_arm.mass_matrix(q), pb_mass, atol=1e-6)
            pb_bias = p.calculateInverseDynamics(body, q.tolist(), v.tolist(), [0.0] * 7, physicsClientId=cid)
            np.testing.assert_allclose(no_arm.bias(q, v) + JointSpaceDynamics(
                IIWA_URDF, NAMES, gravity=[0.0, 0.0, -9.81]).bias(q, np.zeros(7)), pb_bias, atol=1e-6)
    finally:
        p.disconnect(cid)
