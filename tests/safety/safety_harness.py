"""Test harness: fixed-base MuJoCo models compiled with MjSpec from pybullet_data URDFs, PD position actuators.

The A1 hangs from its base (legs in the air, gravity on); the KUKA iiwa (our 7-joint arm here) has its gravity
compensated like a real arm controller does. The contract limits are tighter than the URDF's own, so MuJoCo's joint
limits never hide a violation.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import mujoco
import numpy as np
import pybullet_data

from robot_rl.contract import PolicyContract
from robot_rl.safety import Batch
from robot_rl.state import RobotState

DATA = pybullet_data.getDataPath()
A1_URDF = os.path.join(DATA, "a1", "a1.urdf")
IIWA_URDF = os.path.join(DATA, "kuka_iiwa", "model.urdf")
IIWA_KP = [400.0, 1500.0, 200.0, 600.0, 60.0, 60.0, 30.0]
"""Joint stiffness roughly proportional to the joint inertia (similar bandwidth on every joint)."""
IIWA_KD = [20.0, 80.0, 10.0, 30.0, 2.0, 2.0, 1.0]


@dataclass
class Robot:
    model: Any
    data: Any
    contract: PolicyContract
    inertia: np.ndarray
    """Mass-matrix diagonal (armature included) at the default pose: what a task writes into `joint_inertia`."""


def build_robot(name: str, safety: list[dict[str, Any]] | None = None) -> Robot:
    if name == "a1":
        urdf, kp, kd, phys, vmax, shrink, gravcomp = A1_URDF, 20.0, 0.5, 200.0, 10.0, 0.1, False
    else:
        urdf, kp, kd, phys, vmax, shrink, gravcomp = IIWA_URDF, IIWA_KP, IIWA_KD, 500.0, 1.5, 0.25, True
    spec = mujoco.MjSpec.from_file(urdf)
    spec.option.timestep = 1.0 / phys
    spec.option.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    spec.option.disableflags |= mujoco.mjtDisableBit.mjDSBL_CONTACT
    for body in spec.bodies:
        if gravcomp:
            body.gravcomp = 1.0
    names = [j.name for j in spec.joints]
    lo, hi, tau = [], [], []
    for j in spec.joints:
        j.armature = 0.01
        j.damping[:] = 0.0
        j.frictionloss = 0.0
        r_lo, r_hi = j.range
        span = r_hi - r_lo
        lo.append(r_lo + shrink * span / 2)
        hi.append(r_hi - shrink * span / 2)
        effort = 33.5 if name == "a1" else 300.0
        tau.append(effort)
        act = spec.add_actuator()
        act.target = j.name
        act.trntype = mujoco.mjtTrn.mjTRN_JOINT
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        k_p, k_d = (kp[len(lo) - 1], kd[len(lo) - 1]) if isinstance(kp, list) else (kp, kd)
        act.gainprm[0] = k_p
        act.biasprm[:3] = [0.0, -k_p, -k_d]
        act.forcelimited = True
        act.forcerange = [-effort, effort]
    model = spec.compile()
    data = mujoco.MjData(model)
    default = [(a + b) / 2 for a, b in zip(lo, hi)]
    data.qpos[:] = default
    mujoco.mj_forward(model, data)
    full = np.zeros((model.nv, model.nv))
    mujoco.mj_fullM(model, data, full)
    inertia = np.diag(full).copy()
    n = len(names)
    contract = PolicyContract(robot=name, joint_names=names, default_joint_pos=default, joint_pos_lower=lo,
                              joint_pos_upper=hi, joint_vel_limit=[vmax] * n, torque_limit=tau,
                              kp=kp if isinstance(kp, list) else [kp] * n,
                              kd=kd if isinstance(kd, list) else [kd] * n, policy_rate_hz=50.0,
                              physics_rate_hz=phys, safety=safety or [])
    return Robot(model, data, contract, inertia)


def state_of(robot: Robot) -> RobotState:
    d = robot.data
    return RobotState(joint_pos=d.qpos.copy(), joint_vel=d.qvel.copy(), base_quat=np.array([1.0, 0, 0, 0]),
                      base_ang_vel=np.zeros(3), base_lin_acc=np.zeros(3), timestamp=float(d.time))


Policy = Callable[[RobotState, np.random.Generator], np.ndarray]


def random_policy(c: PolicyContract) -> Policy:
    lo, hi = np.asarray(c.joint_pos_lower), np.asarray(c.joint_pos_upper)

    def act(state: RobotState, rng: np.random.Generator) -> np.ndarray:
        return rng.uniform(lo - 0.3, hi + 0.3)

    return act


def adversarial_policy(c: PolicyContract) -> Policy:
    """Full-scale push beyond the limits, in the direction the joint already moves (pumps into the limits)."""
    lo, hi = np.asarray(c.joint_pos_lower), np.asarray(c.joint_pos_upper)

    def act(state: RobotState, rng: np.random.Generator) -> np.ndarray:
        v = state.joint_vel
        direction = np.where(np.abs(v) > 1e-3, np.sign(v), rng.choice([-1.0, 1.0], size=v.shape))
        return np.where(direction > 0, hi + 0.5, lo - 0.5)

    return act


def rollout(robot: Robot, policy: Policy, chain: Any, episodes: int, ticks: int, seed: int) -> dict[str, float]:
    """Run episodes (random start inside the limits, at rest); count physics samples outside the limits."""
    c, m, d = robot.contract, robot.model, robot.data
    lo, hi = np.asarray(c.joint_pos_lower), np.asarray(c.joint_pos_upper)
    vmax = np.asarray(c.joint_vel_limit)
    rng = np.random.default_rng(seed)
    pos_viol = vel_viol = 0
    worst_pos = worst_vel = 0.0
    samples = 0
    for _ in range(episodes):
        mujoco.mj_resetData(m, d)
        d.qpos[:] = rng.uniform(lo + 0.05 * (hi - lo), hi - 0.05 * (hi - lo))
        mujoco.mj_forward(m, d)
        if chain is not None:
            chain.reset()
        for _ in range(ticks):
            st = state_of(robot)
            u = policy(st, rng)
            if chain is not None:
                u, _ = chain.certify(st, u)
            d.ctrl[:] = u
            for _ in range(c.decimation):
                mujoco.mj_step(m, d)
                over_p = np.maximum(d.qpos - hi, lo - d.qpos)
                over_v = np.abs(d.qvel) - vmax
                pos_viol += int(np.any(over_p > 1e-9))
                vel_viol += int(np.any(over_v > 1e-9))
                worst_pos = max(worst_pos, float(over_p.max()))
                worst_vel = max(worst_vel, float(over_v.max()))
                samples += 1
    return {"pos_violations": pos_viol, "vel_violations": vel_viol, "worst_pos": worst_pos,
            "worst_vel": worst_vel, "samples": samples}


def certify_one(f: Any, state: RobotState, targets: np.ndarray) -> tuple[np.ndarray, dict[str, Any], Any]:
    """One filter on one robot (a batch of one): its targets, its telemetry as plain values, the full result."""
    res = f.certify(Batch(np.asarray(state.joint_pos, float)[None], np.asarray(state.joint_vel, float)[None]),
                    np.asarray(targets, float)[None])
    info = {k: v.item() if v.ndim == 1 else v[0] for k, v in res.info.items()}
    return res.targets[0], info, res
