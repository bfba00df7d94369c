"""Forward invariance in MuJoCo: random and adversarial policies with and without the chain (numbers printed).

The A1 legs use the per-joint (decoupled) model with robust settings; the iiwa uses the coupled mass-matrix model
(docs/safety.md, "Model choice"): the per-joint model cannot keep an arm invariant.
"""

from __future__ import annotations

from typing import Any

import pytest
from safety_harness import IIWA_URDF, adversarial_policy, build_robot, random_policy, rollout

from robot_rl.safety import build_chain

ROBUST = {"inertia_scales": [0.5, 1.0, 2.0], "disturbance_torque": 2.0, "pos_margin": 0.02, "vel_margin": 2.0}
"""A1 legs (decoupled): inertia range, unmodelled torque bound (gravity, coupling), margins."""
ARM = {"model": "coupled", "urdf": IIWA_URDF, "armature": 0.01, "pos_margin": 0.02, "vel_margin": 0.3}
"""iiwa (coupled): M(q) from the URDF + the armature the robot has; gravity compensated by the arm's controller.
vel_margin covers the integrator (MuJoCo's implicit-damping Euler vs the exact zero-order hold) and M(q) drift."""


def _run(name: str, policy_name: str, cbf: dict[str, Any]) -> tuple[dict, dict]:
    robot = build_robot(name)
    c = robot.contract.replace(safety=[{"type": "cbf", "joint_inertia": robot.inertia.tolist(), **cbf}])
    policy = {"random": random_policy, "adversarial": adversarial_policy}[policy_name](c)
    without = rollout(robot, policy, None, episodes=3, ticks=100, seed=1)
    with_chain = rollout(robot, policy, build_chain(c), episodes=3, ticks=100, seed=1)
    print(f"\n{name} {policy_name}: without chain {without}\n{name} {policy_name}: with chain {with_chain}")
    return without, with_chain


@pytest.mark.parametrize("policy_name", ["random", "adversarial"])
def test_a1_joint_limits_are_forward_invariant(policy_name):
    without, with_chain = _run("a1", policy_name, ROBUST)
    assert without["pos_violations"] + without["vel_violations"] > 0
    assert with_chain["pos_violations"] == 0
    assert with_chain["vel_violations"] == 0


@pytest.mark.parametrize("policy_name", ["random", "adversarial"])
def test_arm_joint_limits_are_forward_invariant(policy_name):
    without, with_chain = _run("iiwa", policy_name, ARM)
    assert without["pos_violations"] + without["vel_violations"] > 0
    assert with_chain["pos_violations"] == 0
    assert with_chain["vel_violations"] == 0

