"""URDF serial-chain kinematics (numpy, no simulator) against PyBullet forward kinematics and finite differences."""

from __future__ import annotations

import numpy as np
import pybullet as p
from robot_rl.safety import SerialChain
from safety_harness import IIWA_URDF

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
