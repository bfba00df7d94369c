"""Energy-tank passivity filter (Ferraguti et al. 2013/2015; Califano et al. 2022).

The PD torque splits into damping -Kd q' (passive, dissipates P_diss = q'^T Kd q' >= 0) and the spring
w = Kp (u - q) driven by the policy's target u (possibly non-passive). The tank

    T_{k+1} = T_k + dt (sigma * refill * P_diss - w^T q')        sigma = 0 once T_k >= tank_max

pays for the power the policy injects. Keeping T_{k+1} >= tank_min is one linear row in u,
q'^T Kp u <= (T_k - tank_min) / dt + sigma refill P_diss + q'^T Kp q, enforced by scaling the policy's part of the
spring back towards a passive reference r: u' = r + s (u - r), s in [0, 1]. r is the current position, clipped into
the CBF interval when a CBF precedes this filter, so u' stays inside the CBF interval (it is convex).
The tank is charged with the target that was finally applied (`commit`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robot_rl.contract import PolicyContract
from robot_rl.safety.cbf import CbfFilter
from robot_rl.safety.config import PassivityConfig
from robot_rl.state import RobotState


class PassivityFilter:
    name = "passivity"

    def __init__(self, contract: PolicyContract, cfg: PassivityConfig, cbf: CbfFilter | None = None) -> None:
        self.cfg = cfg
        self.kp = np.asarray(contract.kp, float)
        self.kd = np.asarray(contract.kd, float)
        self.dt = contract.policy_dt
        self.cbf = cbf
        self.tank = cfg.tank_init
        self.batch_tank = np.zeros(0)
        self.injected = 0.0
        """Energy [J] the policy's spring injected since the last reset (tank accounting)."""
        self.batch_injected = np.zeros(0)
        self.refilled = 0.0
        """Energy [J] returned to the tank from dissipation since the last reset."""

    def _scale(self, tank: np.ndarray | float, q: np.ndarray, v: np.ndarray, u: np.ndarray,
               r: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Largest s in [0, 1] with power(r + s (u - r)) <= budget; works batched over leading dims."""
        cfg = self.cfg
        p_diss = np.sum(self.kd * v * v, axis=-1)
        sigma = np.where(tank < cfg.tank_max, cfg.refill, 0.0)
        budget = (tank - cfg.tank_min) / self.dt + sigma * p_diss
        p_ref = np.sum(self.kp * (r - q) * v, axis=-1)
        p_pol = np.sum(self.kp * (u - r) * v, axis=-1)
        over = p_ref + p_pol > budget
        with np.errstate(divide="ignore", invalid="ignore"):
            s = np.where(over & (p_pol > 0), np.clip((budget - p_ref) / p_pol, 0.0, 1.0), 1.0)
        return s, p_diss

    def certify(self, state: RobotState, targets: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        q = np.asarray(state.joint_pos, dtype=float)
        v = np.asarray(state.joint_vel, dtype=float)
        r = q if self.cbf is None else self.cbf.reference(q)
        cfg, kv = self.cfg, self.kp * v
        budget = (self.tank - cfg.tank_min) / self.dt
        if self.tank < cfg.tank_max:
            budget += cfg.refill * float(self.kd @ (v * v))
        p_ref, p_pol = float(kv @ (r - q)), float(kv @ (targets - r))
        s = 1.0
        if p_ref + p_pol > budget and p_pol > 0:
            s = min(max((budget - p_ref) / p_pol, 0.0), 1.0)
        u = targets if s >= 1.0 else r + s * (targets - r)
        return u, {"passivity/scale": s, "passivity/tank": self.tank}

    def certify_batch(self, state: RobotState, targets: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        self._ensure_batch(targets.shape[0])
        q = np.asarray(state.joint_pos, dtype=float)
        v = np.asarray(state.joint_vel, dtype=float)
        r = q if self.cbf is None else self.cbf.reference_batch(q)
        s, _ = self._scale(self.batch_tank, q, v, targets, r)
        u = r + s[:, None] * (targets - r)
        return u, {"passivity/scale": s, "passivity/tank": self.batch_tank.copy()}

    def _ensure_batch(self, num: int) -> None:
        if self.batch_tank.shape[0] != num:
            self.batch_tank = np.full(num, self.cfg.tank_init)
            self.batch_injected = np.zeros(num)

    def _charge(self, tank: np.ndarray | float, q: np.ndarray, v: np.ndarray,
                applied: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        cfg = self.cfg
        p_diss = np.sum(self.kd * v * v, axis=-1)
        power = np.sum(self.kp * (applied - q) * v, axis=-1)
        sigma = np.where(tank < cfg.tank_max, cfg.refill, 0.0)
        return np.minimum(tank + self.dt * (sigma * p_diss - power), cfg.tank_max), power

    def commit(self, state: RobotState, applied: np.ndarray) -> dict[str, Any]:
        q = np.asarray(state.joint_pos, dtype=float)
        v = np.asarray(state.joint_vel, dtype=float)
        if q.shape != applied.shape or v.shape != applied.shape:
            return {"passivity/tank": self.tank, "passivity/power": 0.0}
        # scalar form of _charge (one robot, per tick: no batched reductions)
        cfg, before = self.cfg, self.tank
        kv = self.kp * v
        power = float(kv @ applied - kv @ q)
        if not math.isfinite(power):  # non-finite state (the chain applied its backup): keep the tank as it is
            return {"passivity/tank": self.tank, "passivity/power": 0.0}
        refill = cfg.refill * float(self.kd @ (v * v)) if before < cfg.tank_max else 0.0
        self.tank = min(before + self.dt * (refill - power), cfg.tank_max)
        self.refilled += max(self.tank - before + power * self.dt, 0.0)
        self.injected += max(power, 0.0) * self.dt
        return {"passivity/tank": self.tank, "passivity/power": power}

    def commit_batch(self, state: RobotState, applied: np.ndarray) -> dict[str, Any]:
        self._ensure_batch(applied.shape[0])
        q = np.asarray(state.joint_pos, dtype=float)
        v = np.asarray(state.joint_vel, dtype=float)
        ok = np.all(np.isfinite(v), axis=1) & np.all(np.isfinite(q), axis=1)
        with np.errstate(invalid="ignore"):
            tank, power = self._charge(self.batch_tank, q, v, applied)
        power = np.where(ok, power, 0.0)
        self.batch_tank = np.where(ok, tank, self.batch_tank)
        self.batch_injected += np.maximum(power, 0.0) * self.dt
        return {"passivity/tank": self.batch_tank.copy(), "passivity/power": power}

    def reset(self, mask: np.ndarray | None = None) -> None:
        if mask is None:
            self.tank = self.cfg.tank_init
            self.injected = 0.0
            self.refilled = 0.0
            self.batch_tank[:] = self.cfg.tank_init
            self.batch_injected[:] = 0.0
        elif self.batch_tank.shape[0]:
            self.batch_tank[mask] = self.cfg.tank_init
            self.batch_injected[mask] = 0.0
