"""Energy-tank passivity filter (Ferraguti et al. 2013/2015; Califano et al. 2022).

The PD torque splits into damping -Kd q' (passive, dissipates P_diss = q'^T Kd q' >= 0) and the spring
w = Kp (u - q) driven by the policy's target u (possibly non-passive). The tank

    T_{k+1} = T_k + dt (sigma * refill * P_diss - w^T q')        sigma = 0 once T_k >= tank_max

pays for the power the policy injects. Keeping T_{k+1} >= tank_min is one linear row in u,
q'^T Kp u <= (T_k - tank_min) / dt + sigma refill P_diss + q'^T Kp q, enforced by scaling the policy's part of the
spring back towards a passive reference r: u' = r + s (u - r), s in [0, 1]. r is the current position, clipped into
the CBF interval when a CBF precedes this filter, so u' stays inside the CBF interval (it is convex).
The tank is charged with the target that was finally applied (`commit`). The reference is handed over by the chain
(`Batch.feasible`), not read from the CBF. One robot is a batch of one; both loops are compiled.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from robot_rl.contract import PolicyContract
from robot_rl.safety.config import PassivityConfig
from robot_rl.safety.protocol import Batch, Certified, selected
from robot_rl.state import RobotState


@njit(cache=True, nogil=True)
def scale_towards(tank: np.ndarray, q: np.ndarray, v: np.ndarray, u: np.ndarray, r: np.ndarray, kp: np.ndarray,
           kd: np.ndarray, dt: float, tank_min: float, tank_max: float, refill: float, out: np.ndarray,
           scale: np.ndarray) -> None:
    """out = r + s (u - r) per row with the largest s in [0, 1] whose power fits the tank's budget (out = u when
    s = 1)."""
    for e in range(q.shape[0]):
        p_diss, p_ref, p_pol = 0.0, 0.0, 0.0
        for j in range(q.shape[1]):
            kv = kp[j] * v[e, j]
            p_diss += kd[j] * (v[e, j] * v[e, j])
            p_ref += kv * (r[e, j] - q[e, j])
            p_pol += kv * (u[e, j] - r[e, j])
        budget = (tank[e] - tank_min) / dt
        if tank[e] < tank_max:
            budget += refill * p_diss
        s = 1.0
        if p_ref + p_pol > budget and p_pol > 0:
            s = min(max((budget - p_ref) / p_pol, 0.0), 1.0)
        scale[e] = s
        for j in range(q.shape[1]):
            out[e, j] = u[e, j] if s >= 1.0 else r[e, j] + s * (u[e, j] - r[e, j])


@njit(cache=True, nogil=True)
def _charge(tank: np.ndarray, q: np.ndarray, v: np.ndarray, applied: np.ndarray, kp: np.ndarray, kd: np.ndarray,
            dt: float, tank_max: float, refill: float, power: np.ndarray, refilled: np.ndarray,
            injected: np.ndarray) -> None:
    """Charge each tank with the applied targets; a row whose power is not finite (non-finite state: the chain
    applied its backup) keeps its tank and reports zero power."""
    for e in range(q.shape[0]):
        p, p_diss = 0.0, 0.0
        for j in range(q.shape[1]):
            p += kp[j] * v[e, j] * (applied[e, j] - q[e, j])
            p_diss += kd[j] * (v[e, j] * v[e, j])
        if p - p != 0.0:
            power[e] = 0.0
            continue
        before = tank[e]
        gain = refill * p_diss if before < tank_max else 0.0
        tank[e] = min(before + dt * (gain - p), tank_max)
        refilled[e] += max(tank[e] - before + p * dt, 0.0)
        injected[e] += max(p, 0.0) * dt
        power[e] = p


class PassivityFilter:
    name = "passivity"

    def __init__(self, contract: PolicyContract, cfg: PassivityConfig) -> None:
        self.cfg = cfg
        self.kp = np.asarray(contract.kp, float)
        self.kd = np.asarray(contract.kd, float)
        self.dt = contract.policy_dt
        self.tank = np.zeros(0)
        """(N,) tank energy [J] per robot."""
        self.injected = np.zeros(0)
        """(N,) energy [J] the policy's spring injected since the last reset (tank accounting)."""
        self.refilled = np.zeros(0)
        """(N,) energy [J] returned to the tank from dissipation since the last reset."""

    def certify(self, batch: Batch, targets: np.ndarray) -> Certified:
        num = targets.shape[0]
        tank = self.tank if self.tank.shape[0] == num else np.full(num, self.cfg.tank_init)
        q, v = batch.q, batch.v
        r = q if batch.feasible is None else batch.feasible.reference(q)
        cfg = self.cfg
        u, s = np.empty_like(targets), np.empty(num)
        scale_towards(tank, q, v, np.ascontiguousarray(targets, dtype=float), np.ascontiguousarray(r), self.kp, self.kd,
               self.dt, cfg.tank_min, cfg.tank_max, cfg.refill, u, s)
        return Certified(u, {"passivity/scale": s, "passivity/tank": tank.copy()})

    def commit(self, state: RobotState, applied: np.ndarray) -> dict[str, np.ndarray]:
        num = applied.shape[0]
        if self.tank.shape[0] != num:
            self.tank = np.full(num, self.cfg.tank_init)
            self.injected, self.refilled = np.zeros(num), np.zeros(num)
        q = np.asarray(state.joint_pos, dtype=float).reshape(applied.shape)
        v = np.asarray(state.joint_vel, dtype=float).reshape(applied.shape)
        power = np.empty(num)
        _charge(self.tank, q, v, applied, self.kp, self.kd, self.dt, self.cfg.tank_max, self.cfg.refill, power,
                self.refilled, self.injected)
        return {"passivity/tank": self.tank.copy(), "passivity/power": power}

    def reset(self, mask: np.ndarray | None = None) -> None:
        rows = selected(mask, self.tank.shape[0])
        self.tank[rows] = self.cfg.tank_init
        self.injected[rows] = 0.0
        self.refilled[rows] = 0.0
