"""Shields (Alshiekh et al. 2018, post-posed): input sanity, robot-state checks with a latch, and a target rate limit.

A shield never substitutes an action itself: it reports that it fired and why (`shield/fired`, `shield/reason`),
and the chain applies its backup. Each works on one robot (`certify`) and on a batch of environments
(`certify_batch`, no Python loop over environments).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robot_rl.contract import PolicyContract
from robot_rl.safety.config import RateLimitConfig, SanityConfig, StateShieldConfig
from robot_rl.state import RobotState, tilt_angle

_MAX = np.maximum.reduce


class SanityShield:
    """Targets and state must have the contract length and be finite; targets must not be absurdly out of range."""

    name = "sanity"

    def __init__(self, contract: PolicyContract, cfg: SanityConfig) -> None:
        self.cfg = cfg
        self.n = contract.num_joints
        self.lower = np.asarray(contract.joint_pos_lower, float) - cfg.range_tolerance
        self.upper = np.asarray(contract.joint_pos_upper, float) + cfg.range_tolerance
        self.mid, self.half = (self.lower + self.upper) / 2, (self.upper - self.lower) / 2
        self._dev = np.empty(self.n)

    def reason(self, state: RobotState, targets: np.ndarray) -> str:
        """Why the inputs are unusable ("" when they are fine). Never raises for arrays of any shape."""
        n = self.n
        q, v = state.joint_pos, state.joint_vel
        if type(q) is np.ndarray and type(v) is np.ndarray and q.shape == v.shape == targets.shape == (n,):
            # fast path: one finiteness test for all three (a NaN/Inf anywhere makes the sum non-finite; an
            # overflow of huge finite values also lands in the detailed checks below) and one range test
            if math.isfinite(q @ q + v @ v + targets @ targets) and \
                    _MAX(np.abs(targets - self.mid, out=self._dev) - self.half) <= 0.0:
                return ""
        for label, arr in (("joint_pos", state.joint_pos), ("joint_vel", state.joint_vel)):
            a = np.asarray(arr)
            if a.shape != (n,):
                return f"state {label} has shape {a.shape}, expected ({n},)"
            if not np.all(np.isfinite(a)):
                return f"state {label} is not finite"
        if targets.shape != (n,):
            return f"targets have shape {targets.shape}, expected ({n},)"
        if not np.all(np.isfinite(targets)):
            return "targets contain NaN/Inf"
        if (targets < self.lower).any() or (targets > self.upper).any():
            out = (targets < self.lower) | (targets > self.upper)
            j = int(np.flatnonzero(out)[0])
            return f"target {j} = {targets[j]:.3g} is out of range"
        return ""

    def reason_batch(self, state: RobotState, targets: np.ndarray) -> np.ndarray:
        """(N,) bool: environments whose inputs are unusable (shapes are checked by the chain)."""
        bad = ~np.all(np.isfinite(targets), axis=1)
        bad |= ~np.all(np.isfinite(state.joint_pos), axis=1) | ~np.all(np.isfinite(state.joint_vel), axis=1)
        with np.errstate(invalid="ignore"):
            bad |= np.any((targets < self.lower) | (targets > self.upper), axis=1)
        return bad


class StateShield:
    """Tilt, base height, stale state and e-stop: any of them latches the backup until `reset`."""

    name = "state"

    def __init__(self, contract: PolicyContract, cfg: StateShieldConfig) -> None:
        self.cfg = cfg
        self.latched = False
        self.latch_reason = ""
        self._last_ts = -np.inf
        self._repeats = 0
        self.batch_latched = np.zeros(0, dtype=bool)
        self._batch_last_ts = np.zeros(0)
        self._batch_repeats = np.zeros(0, dtype=np.int64)

    def check(self, state: RobotState, now: float | None) -> str:
        """Reason to latch ("" if the state is acceptable); updates the staleness counter."""
        cfg = self.cfg
        if cfg.max_tilt is not None:
            quat = np.asarray(state.base_quat, dtype=float)
            if quat.shape != (4,):
                return "base orientation is missing"
            _, x, y, _ = quat.tolist()
            cos_tilt = 1.0 - 2.0 * (x * x + y * y)  # world z . base z, as in robot_rl.state.tilt_angle
            tilt = math.acos(max(-1.0, min(1.0, cos_tilt))) if math.isfinite(cos_tilt) else math.inf
            if tilt > cfg.max_tilt:
                return f"tilt {tilt:.2f} rad > {cfg.max_tilt:.2f}"
        if cfg.min_base_height is not None and state.base_pos is not None:
            z = float(np.asarray(state.base_pos, dtype=float)[2])
            if not z >= cfg.min_base_height:
                return f"base height {z:.3f} m < {cfg.min_base_height:.3f}"
        ts = float(state.timestamp)
        if cfg.max_state_age is not None and now is not None and not now - ts <= cfg.max_state_age:
            return f"state is {now - ts:.3f} s old > {cfg.max_state_age:.3f}"
        if cfg.max_repeated_states is not None:
            self._repeats = self._repeats + 1 if not ts > self._last_ts else 0
            self._last_ts = max(ts, self._last_ts)
            if self._repeats > cfg.max_repeated_states:
                return f"state timestamp has not advanced for {self._repeats} ticks"
        return ""

    def check_batch(self, state: RobotState, now: float | None) -> np.ndarray:
        """(N,) bool: environments whose state must latch the backup."""
        cfg = self.cfg
        num = np.shape(state.joint_pos)[0]
        self._resize(num)
        bad = np.zeros(num, dtype=bool)
        if cfg.max_tilt is not None:
            with np.errstate(invalid="ignore"):
                tilt = tilt_angle(np.asarray(state.base_quat, dtype=float))
            bad |= ~(tilt <= cfg.max_tilt)
        if cfg.min_base_height is not None and state.base_pos is not None:
            bad |= ~(np.asarray(state.base_pos)[:, 2] >= cfg.min_base_height)
        ts = np.broadcast_to(np.asarray(state.timestamp, dtype=float), (num,))
        if cfg.max_state_age is not None and now is not None:
            bad |= ~(now - ts <= cfg.max_state_age)
        if cfg.max_repeated_states is not None:
            fresh = ts > self._batch_last_ts
            self._batch_repeats = np.where(fresh, 0, self._batch_repeats + 1)
            self._batch_last_ts = np.maximum(ts, self._batch_last_ts)
            bad |= self._batch_repeats > cfg.max_repeated_states
        return bad

    def _resize(self, num: int) -> None:
        if self.batch_latched.shape[0] != num:
            self.batch_latched = np.zeros(num, dtype=bool)
            self._batch_last_ts = np.full(num, -np.inf)
            self._batch_repeats = np.zeros(num, dtype=np.int64)

    def reset(self, mask: np.ndarray | None = None) -> None:
        if mask is None:
            self.latched, self.latch_reason = False, ""
            self._last_ts, self._repeats = -np.inf, 0
            self.batch_latched[:] = False
            self._batch_last_ts[:] = -np.inf
            self._batch_repeats[:] = 0
        elif self.batch_latched.shape[0]:
            self.batch_latched[mask] = False
            self._batch_last_ts[mask] = -np.inf
            self._batch_repeats[mask] = 0


class RateLimiter:
    """Each target moves at most max_rate * policy_dt from the previously applied target (first tick: from q)."""

    name = "rate_limit"

    def __init__(self, contract: PolicyContract, cfg: RateLimitConfig) -> None:
        n = contract.num_joints
        self.step = np.broadcast_to(np.asarray(cfg.max_rate, float), (n,)) * contract.policy_dt
        self.prev: np.ndarray | None = None
        self._window: tuple[np.ndarray, np.ndarray] | None = None
        """[prev - step, prev + step], computed once per tick in commit."""
        self.batch_prev = np.zeros((0, n))
        self.batch_valid = np.zeros(0, dtype=bool)

    def certify(self, state: RobotState, targets: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        if self._window is None:
            ref = np.asarray(state.joint_pos, dtype=float)
            lo, hi = ref - self.step, ref + self.step
        else:
            lo, hi = self._window
        u = np.maximum(targets, lo)
        np.minimum(u, hi, out=u)
        return u, {"rate_limit/active": int(np.count_nonzero(u != targets))}

    def certify_batch(self, state: RobotState, targets: np.ndarray) -> tuple[np.ndarray, dict[str, Any]]:
        num = targets.shape[0]
        if self.batch_prev.shape[0] != num:
            self.batch_prev = np.zeros_like(targets)
            self.batch_valid = np.zeros(num, dtype=bool)
        ref = np.where(self.batch_valid[:, None], self.batch_prev, state.joint_pos)
        u = np.minimum(np.maximum(targets, ref - self.step), ref + self.step)
        return u, {"rate_limit/active": np.count_nonzero(u != targets, axis=1)}

    def commit(self, state: RobotState, applied: np.ndarray) -> None:
        self.prev = applied.copy()
        self._window = (applied - self.step, applied + self.step)

    def commit_batch(self, state: RobotState, applied: np.ndarray) -> None:
        if self.batch_prev.shape != applied.shape:
            self.batch_prev = np.zeros_like(applied)
            self.batch_valid = np.zeros(applied.shape[0], dtype=bool)
        self.batch_prev[:] = applied
        self.batch_valid[:] = True

    def reset(self, mask: np.ndarray | None = None) -> None:
        if mask is None:
            self.prev = None
            self._window = None
            self.batch_valid[:] = False
        elif self.batch_valid.shape[0]:
            self.batch_valid[mask] = False
