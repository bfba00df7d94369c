"""Shields (Alshiekh et al. 2018, post-posed): input sanity, robot-state checks with a latch, and a target rate limit.

A shield never substitutes an action itself: it reports which robots it fired for and why, and the chain applies
its backup. Everything works on a batch of robots (no Python loop over robots on a healthy tick); one robot is a
batch of one.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
from numba import njit

from robot_rl.contract import PolicyContract
from robot_rl.safety.config import RateLimitConfig, SanityConfig, StateShieldConfig
from robot_rl.safety.protocol import Batch, Certified, selected
from robot_rl.state import RobotState


@njit(cache=True, nogil=True, inline="always")
def unusable_row(q: np.ndarray, v: np.ndarray, targets: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> bool:
    """One robot (n,): a non-finite position, velocity or target, or a target outside [lower, upper]."""
    for j in range(q.shape[0]):
        t = targets[j]
        if q[j] - q[j] != 0.0 or v[j] - v[j] != 0.0 or t - t != 0.0 or t < lower[j] or t > upper[j]:
            return True
    return False


@njit(cache=True, nogil=True)
def _unusable(q: np.ndarray, v: np.ndarray, targets: np.ndarray, lower: np.ndarray, upper: np.ndarray,
              bad: np.ndarray) -> None:
    """bad[e]: `unusable_row` of row e."""
    for e in range(q.shape[0]):
        bad[e] = unusable_row(q[e], v[e], targets[e], lower, upper)


_NO_HEIGHT = np.zeros(0)
_NEVER = np.zeros(1, dtype=bool)


@njit(cache=True, nogil=True)
def _limit(targets: np.ndarray, q: np.ndarray, prev: np.ndarray, valid: np.ndarray, step: np.ndarray,
           u: np.ndarray, active: np.ndarray) -> None:
    """u = clip(targets, ref - step, ref + step) with ref = prev where valid (valid of length 1: for every row),
    else q; active: joints moved per row."""
    for e in range(targets.shape[0]):
        known = valid[e] if valid.shape[0] > 1 else valid[0]
        count = 0
        for j in range(targets.shape[1]):
            ref = prev[e, j] if known else q[e, j]
            t = targets[e, j]
            lo, hi = ref - step[j], ref + step[j]
            x = np.nan if t != t or lo != lo else (lo if t < lo else t)  # np.maximum, then np.minimum: NaN propagates
            x = np.nan if x != x or hi != hi else (hi if x > hi else x)
            u[e, j] = x
            if x != t:
                count += 1
        active[e] = count


@njit(cache=True, nogil=True)
def unacceptable_state(quat: np.ndarray, height: np.ndarray, ts: np.ndarray, now: float, limits: np.ndarray,
                        last_ts: np.ndarray, repeats: np.ndarray, latched: np.ndarray, out: np.ndarray) -> int:
    """Latch row e (latched[e]; out[1, e] when it was not latched yet; returns how many are fresh; out[0] = latched
    afterwards) when:
    tilt > limits[0], base height < limits[1] (height empty: unknown), now - timestamp > limits[2] (now
    NaN: unknown), or more than limits[3] ticks without a newer timestamp (updates last_ts and repeats); a NaN
    limit disables its check, a NaN measurement fails it. The tilt is arccos(1 - 2 (x^2 + y^2)), as
    robot_rl.state.tilt_angle."""
    max_tilt, min_height, max_age, max_repeats = limits[0], limits[1], limits[2], limits[3]
    count = 0
    for e in range(latched.shape[0]):
        b = False
        if max_tilt == max_tilt:
            x, y = quat[e, 1], quat[e, 2]
            c = -(2.0 * (x * x + y * y) - 1.0)
            if c != c:
                b = True
            else:
                b = not math.acos(min(max(c, -1.0), 1.0)) <= max_tilt
        if min_height == min_height and height.shape[0] and not height[e] >= min_height:
            b = True
        t = ts[e] if ts.shape[0] > 1 else ts[0]
        if max_age == max_age and now == now and not now - t <= max_age:
            b = True
        if max_repeats == max_repeats:
            last = last_ts[e]
            repeats[e] = 0 if t > last else repeats[e] + 1
            last_ts[e] = np.nan if t != t or last != last else max(t, last)
            if repeats[e] > max_repeats:
                b = True
        fresh = b and not latched[e]
        if fresh:
            latched[e] = True
            count += 1
        out[0, e], out[1, e] = latched[e], fresh
    return count


class SanityShield:
    """Targets and state must have the contract length and be finite; targets must not be absurdly out of range."""

    name = "sanity"

    def __init__(self, contract: PolicyContract, cfg: SanityConfig) -> None:
        self.cfg = cfg
        self.n = contract.num_joints
        self.lower = np.asarray(contract.joint_pos_lower, float) - cfg.range_tolerance
        self.upper = np.asarray(contract.joint_pos_upper, float) + cfg.range_tolerance
        self._one = (self.n,)
        """The shape of one robot's arrays."""

    def shape_reason(self, q: Any, v: Any, targets: Any, rows: tuple[int, ...]) -> str:
        """Why the arrays cannot be certified as `rows` robots ("" when their shapes fit); () is one robot."""
        want = self._one if not rows else (*rows, self.n)
        if type(q) is np.ndarray and type(v) is np.ndarray and type(targets) is np.ndarray and \
                q.shape == v.shape == targets.shape == want:
            return ""
        for label, a in (("state joint_pos", q), ("state joint_vel", v), ("targets", targets)):
            shape = np.shape(a)
            if shape != want:
                return f"{label} has shape {shape}, expected {want}"
        return ""

    def check(self, q: np.ndarray, v: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """(N,) bool: robots whose inputs are unusable (non-finite state or targets, targets out of range)."""
        bad = np.empty(q.shape[0], dtype=bool)
        _unusable(q, v, targets, self.lower, self.upper, bad)
        return bad

    def explain(self, q: np.ndarray, v: np.ndarray, targets: np.ndarray) -> str:
        """Why one robot's (n,) inputs are unusable, for telemetry."""
        for label, a in (("joint_pos", q), ("joint_vel", v)):
            if not np.all(np.isfinite(a)):
                return f"state {label} is not finite"
        if not np.all(np.isfinite(targets)):
            return "targets contain NaN/Inf"
        out = (targets < self.lower) | (targets > self.upper)
        j = int(np.flatnonzero(out)[0]) if out.any() else 0
        return f"target {j} = {targets[j]:.3g} is out of range"


class StateShield:
    """Tilt, base height, stale state and e-stop: any of them latches the backup until `reset`."""

    name = "state"

    def __init__(self, contract: PolicyContract, cfg: StateShieldConfig) -> None:
        self.cfg = cfg
        self.latched = np.zeros(0, dtype=bool)
        """(N,) robots whose backup is latched."""
        self.latch_reason: list[str] = []
        """Why each latched robot latched."""
        self.last_ts = np.zeros(0)
        """(N,) newest timestamp seen per robot (the staleness check's memory)."""
        self.repeats = np.zeros(0, dtype=np.int64)
        """(N,) ticks since the timestamp last advanced."""
        self._one_ts = np.zeros(1)
        off = math.nan
        self.limits = np.array([off if cfg.max_tilt is None else cfg.max_tilt,
                                 off if cfg.min_base_height is None else cfg.min_base_height,
                                 off if cfg.max_state_age is None else cfg.max_state_age,
                                 off if cfg.max_repeated_states is None else cfg.max_repeated_states])
        """max_tilt, min_base_height, max_state_age, max_repeated_states (NaN: check disabled), for the kernel."""

    def inputs(self, state: RobotState, num: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """What `unacceptable_state` reads of a state of `num` robots: base orientations (N, 4), base heights (N,)
        (empty: unknown or not checked) and timestamps (N,) or (1,). Sizes the shield's memory for `num` robots."""
        quat = np.asarray(state.base_quat, dtype=float).reshape(num, -1)
        pos = None if state.base_pos is None else np.asarray(state.base_pos, dtype=float).reshape(num, -1)
        if self.latched.shape[0] != num:
            self._resize(num)
        timestamp = state.timestamp
        if type(timestamp) is np.ndarray:
            ts = timestamp.astype(float, copy=False).reshape(-1)
        else:
            ts = self._one_ts
            ts[0] = timestamp
        height = _NO_HEIGHT if self.cfg.min_base_height is None or pos is None else pos[:, 2]
        if self.cfg.max_tilt is not None and quat.shape != (num, 4):
            quat = np.full((num, 4), np.nan)  # no orientation to check: fails the tilt check
        return quat, height, ts

    def check(self, quat: np.ndarray, height: np.ndarray, ts: np.ndarray,
              now: float | None) -> tuple[np.ndarray, np.ndarray]:
        """Latch the robots whose state is unacceptable (`inputs`); returns (N,) the latched robots and (N,) those
        that latched on this tick (their reason in `latch_reason`). Updates the staleness counters."""
        out = np.empty((2, self.latched.shape[0]), dtype=bool)  # (latched, fresh), filled by the kernel
        if unacceptable_state(quat, height, ts, math.nan if now is None else now, self.limits, self.last_ts,
                              self.repeats, self.latched, out):
            self.record(out[1], quat, height, ts, now)
        return out[0], out[1]

    def record(self, fresh: np.ndarray, quat: np.ndarray, height: np.ndarray, ts: np.ndarray,
               now: float | None) -> None:
        """Write why each robot in `fresh` (N,) latched, after `unacceptable_state` latched it."""
        for i in np.flatnonzero(fresh):
            self.latch_reason[i] = self._explain(quat, height, float(ts[i if ts.shape[0] > 1 else 0]), now, int(i))

    def _explain(self, quat: np.ndarray, height: np.ndarray, ts: float, now: float | None, i: int) -> str:
        cfg = self.cfg
        if cfg.max_tilt is not None:
            _, x, y, _ = quat[i].tolist()
            if not math.isfinite(x + y):
                return "base orientation is missing"
            cos_tilt = 1.0 - 2.0 * (x * x + y * y)  # world z . base z, as in robot_rl.state.tilt_angle
            tilt = math.acos(max(-1.0, min(1.0, cos_tilt))) if math.isfinite(cos_tilt) else math.inf
            if tilt > cfg.max_tilt:
                return f"tilt {tilt:.2f} rad > {cfg.max_tilt:.2f}"
        if cfg.min_base_height is not None and height.shape[0] and not height[i] >= cfg.min_base_height:
            return f"base height {height[i]:.3f} m < {cfg.min_base_height:.3f}"
        if cfg.max_state_age is not None and now is not None and not now - ts <= cfg.max_state_age:
            return f"state is {now - ts:.3f} s old > {cfg.max_state_age:.3f}"
        return f"state timestamp has not advanced for {int(self.repeats[i])} ticks"

    def _resize(self, num: int) -> None:
        if self.latched.shape[0] != num:
            self.latched = np.zeros(num, dtype=bool)
            self.latch_reason = [""] * num
            self.last_ts = np.full(num, -np.inf)
            self.repeats = np.zeros(num, dtype=np.int64)

    def reset(self, mask: np.ndarray | None = None) -> None:
        rows = selected(mask, self.latched.shape[0])
        self.latched[rows] = False
        self.last_ts[rows] = -np.inf
        self.repeats[rows] = 0


class RateLimiter:
    """Each target moves at most max_rate * policy_dt from the previously applied target (first tick: from q)."""

    name = "rate_limit"

    def __init__(self, contract: PolicyContract, cfg: RateLimitConfig) -> None:
        n = contract.num_joints
        self.step = np.broadcast_to(np.asarray(cfg.max_rate, float), (n,)) * contract.policy_dt
        """(n,) largest target change per tick."""
        self.prev = np.zeros((0, n))
        """(N, n) the targets applied on the last tick (rows where `valid`)."""
        self.valid = np.zeros(0, dtype=bool)
        """(N,) robots with a previous target since their reset (the others are limited around q)."""

    def certify(self, batch: Batch, targets: np.ndarray) -> Certified:
        num = targets.shape[0]
        u, active = np.empty_like(targets), np.empty(num, dtype=np.int64)
        known = self.valid.shape[0] == num
        _limit(targets, batch.q, self.prev if known else batch.q, self.valid if known else _NEVER, self.step, u, active)
        return Certified(u, {"rate_limit/active": active})

    def commit(self, state: RobotState, applied: np.ndarray) -> dict[str, np.ndarray]:
        if self.prev.shape != applied.shape:
            self.prev = np.zeros_like(applied)
            self.valid = np.zeros(applied.shape[0], dtype=bool)
        self.prev[...] = applied  # two assignments cost less than one compiled call on a batch of one
        self.valid[...] = True
        return {}

    def reset(self, mask: np.ndarray | None = None) -> None:
        self.valid[selected(mask, self.valid.shape[0])] = False
