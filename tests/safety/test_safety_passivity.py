"""Energy tank: an energy-pumping policy never drains the tank below its bound; injected energy stays bounded."""

from __future__ import annotations

import mujoco
import numpy as np
from safety_harness import build_robot, state_of

from robot_rl.safety import build_chain


def _pump(state):
    """Resonant pumping: the target is pushed far in the direction of motion every tick."""
    v = state.joint_vel
    return state.joint_pos + np.where(v >= 0, 0.6, -0.6)


def _run(chain, robot, ticks=150):
    m, d, c = robot.model, robot.data, robot.contract
    mujoco.mj_resetData(m, d)
    d.qpos[:] = c.default_joint_pos
    mujoco.mj_forward(m, d)
    tanks, work = [], 0.0
    for _ in range(ticks):
        st = state_of(robot)
        u = _pump(st)
        if chain is not None:
            u, info = chain.certify(st, u)
            tanks.append(info["passivity/tank"])
        d.ctrl[:] = u
        for _ in range(c.decimation):
            mujoco.mj_step(m, d)
            work += m.opt.timestep * float(np.sum(np.asarray(c.kp) * (u - d.qpos) * d.qvel))
    return np.array(tanks), work, float(0.5 * np.sum(robot.inertia * d.qvel ** 2))


def test_tank_never_below_bound_and_injected_energy_bounded():
    robot = build_robot("a1")
    cfg = {"type": "passivity", "tank_init": 2.0, "tank_min": 0.5, "tank_max": 3.0, "refill": 1.0}
    chain = build_chain(robot.contract.replace(safety=[cfg]))
    tanks, work_on, ke_on = _run(chain, robot)
    _, work_off, ke_off = _run(None, robot)
    f = chain.filters[0]
    print(f"\npassivity: spring work with tank {work_on:.2f} J, without {work_off:.2f} J; "
          f"min tank {tanks.min():.3f} J; KE {ke_on:.3f} vs {ke_off:.3f} J")
    assert tanks.min() >= cfg["tank_min"] - 1e-9
    # tank accounting: injected = tank_init - tank_end + returned dissipation, never more than the tank allows
    assert f.injected.shape == f.refilled.shape == (1,)  # one robot: a batch of one
    assert f.injected[0] <= cfg["tank_init"] - cfg["tank_min"] + f.refilled[0] + 1e-9
    assert work_off > 5 * max(work_on, 1e-3)
