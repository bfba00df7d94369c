"""The legged chain's filters for one robot in one compiled call: an accelerated path of `SafetyChain.certify`.

A chain whose filters are exactly [rate_limit, cbf] or [rate_limit, cbf, passivity], with a CBF that is only the
clip into its joint intervals (decoupled model, no workspace, solver auto), runs, on a healthy tick of one robot,
`leg_chain` (the sanity shield's own row check, then the filters; `leg_chain_passive` adds the passivity filter's
own `_scale` towards the CBF interval) instead of their numpy code: a control tick starts with cold caches, where
each numpy call costs microseconds. With a state shield, `LegPath.tick` runs the shield's own check
(`unacceptable_state` on its memory, as `StateShield.check` does) in the same call. The kernels read what the shield
and filters publish (the shield's `lower`, `upper`; the limiter's `step`, `prev`, `valid`; the CBF's
`interval_tables()`; the tank's `tank`, `kp`, `kd`, `dt`, `cfg`), write nothing of the filters' (the chain commits
the applied target to every filter, as on the filter path), and are checked against the filters when built: a
mismatch raises instead of silently differing.
"""

from __future__ import annotations

import math
from typing import Any, cast

import numpy as np
from numba import njit

from robot_rl.contract import PolicyContract
from robot_rl.safety.cbf import RELAX_LEVELS, SLACK_LEVEL, CbfFilter
from robot_rl.safety.intervals import joint_intervals
from robot_rl.safety.passivity import PassivityFilter, scale_towards
from robot_rl.safety.protocol import Batch, Filter, FilterSpec
from robot_rl.safety.shields import RateLimiter, SanityShield, StateShield, unacceptable_state, unusable_row
from robot_rl.state import RobotState

KERNEL_FILTERS = (("rate_limit", "cbf"), ("rate_limit", "cbf", "passivity"))
"""The filter sequences the kernels reproduce."""


@njit(cache=True, nogil=True, inline="always")
def _filters(q: np.ndarray, v: np.ndarray, raw: np.ndarray, prev: np.ndarray, valid: np.ndarray,
             limits: np.ndarray, tables: np.ndarray, slack_level: int, work: np.ndarray, ints: np.ndarray,
             sums: np.ndarray, u: np.ndarray) -> bool:
    """The sanity shield's check (`unusable_row` with limits[0], limits[1] = its lower, upper), then a rate limiter
    (step limits[2]) and the CBF's interval clip into u (n,). The rate window is prev[0] +- step when the limiter
    remembers one robot (valid == [True]), else q +- step; the CBF interval comes from `joint_intervals`. False when
    the inputs are unusable or the clip is not finite. work[:3] = (interval lower, interval upper, rate-limited
    targets), ints = (relaxation level, rate-limited joints, CBF-moved joints), sums[0] = squared CBF correction."""
    n = raw.shape[0]
    if unusable_row(q, v, raw, limits[0], limits[1]):
        return False
    has_prev = valid.shape[0] == 1 and valid[0]
    step, u_rate = limits[2], work[2]
    rate_active = 0
    for j in range(n):
        ref = prev[0, j] if has_prev else q[j]
        lo, hi = ref - step[j], ref + step[j]
        x = lo if raw[j] < lo else raw[j]
        x = hi if x > hi else x
        u_rate[j] = x
        if x != raw[j]:
            rate_active += 1
    joint_intervals(tables, q.reshape(1, n), v.reshape(1, n), work[0:1], work[1:2], ints[0:1], slack_level)
    cbf_active, cbf_sq = 0, 0.0
    for j in range(n):
        a, low, high = u_rate[j], work[0, j], work[1, j]
        x = np.nan if low != low else (low if a < low else a)
        x = np.nan if x != x or high != high else (high if x > high else x)
        if x - x != 0.0:
            return False
        u[j] = x
        d = x - a
        if d != 0.0:
            cbf_active += 1
        cbf_sq += d * d
    ints[1], ints[2] = rate_active, cbf_active
    sums[0] = cbf_sq
    return True


@njit(cache=True, nogil=True, inline="always")
def _correction(raw: np.ndarray, out: np.ndarray, sums: np.ndarray) -> None:
    """out[1] = out[0] - raw and sums[1] = its squared norm."""
    total_sq = 0.0
    for j in range(raw.shape[0]):
        c = out[0, j] - raw[j]
        out[1, j] = c
        total_sq += c * c
    sums[1] = total_sq


@njit(cache=True, nogil=True)
def leg_chain(q: np.ndarray, v: np.ndarray, raw: np.ndarray, prev: np.ndarray, valid: np.ndarray,
              limits: np.ndarray, tables: np.ndarray, slack_level: int, work: np.ndarray, ints: np.ndarray,
              sums: np.ndarray, out: np.ndarray) -> bool:
    """[rate_limit, cbf] behind the sanity check (`_filters`) for one robot in one call. Returns False when the
    inputs are unusable or the result is not finite (the caller then runs the shields and filters, which say why).
    On success out = (safe targets, safe - raw) (2, n), work, ints as `_filters` leaves them, sums = (squared CBF
    correction, squared total correction)."""
    if not _filters(q, v, raw, prev, valid, limits, tables, slack_level, work, ints, sums, out[0]):
        return False
    _correction(raw, out, sums)
    return True


@njit(cache=True, nogil=True)
def leg_chain_passive(q: np.ndarray, v: np.ndarray, raw: np.ndarray, prev: np.ndarray, valid: np.ndarray,
                      limits: np.ndarray, tables: np.ndarray, slack_level: int, work: np.ndarray, ints: np.ndarray,
                      sums: np.ndarray, out: np.ndarray, tank: np.ndarray, gains: np.ndarray, tank_cfg: np.ndarray,
                      scale: np.ndarray) -> bool:
    """`leg_chain`, then the passivity filter's `scale_towards` (tank (1,), gains = (kp, kd) (2, n), tank_cfg = (dt,
    tank_min, tank_max, refill)) from the CBF's target work[3] towards the reference work[4] = q clipped into the
    CBF interval (as `Box.reference`); scale[0] is the scale used."""
    n = raw.shape[0]
    if not _filters(q, v, raw, prev, valid, limits, tables, slack_level, work, ints, sums, work[3]):
        return False
    for j in range(n):  # np.minimum(np.maximum(q, lower), upper); every value is finite here
        x = q[j]
        low, high = work[0, j], work[1, j]
        x = low if x < low else x
        work[4, j] = high if x > high else x
    scale_towards(tank, q.reshape(1, n), v.reshape(1, n), work[3:4], work[4:5], gains[0], gains[1], tank_cfg[0],
                  tank_cfg[1], tank_cfg[2], tank_cfg[3], out[0:1], scale)
    for j in range(n):
        if out[0, j] - out[0, j] != 0.0:
            return False
    _correction(raw, out, sums)
    return True


@njit(cache=True, nogil=True)
def leg_tick(quat: np.ndarray, height: np.ndarray, ts: np.ndarray, now: float, state_limits: np.ndarray,
             last_ts: np.ndarray, repeats: np.ndarray, latched: np.ndarray, screen: np.ndarray, q: np.ndarray,
             v: np.ndarray, raw: np.ndarray, prev: np.ndarray, valid: np.ndarray, limits: np.ndarray,
             tables: np.ndarray, slack_level: int, work: np.ndarray, ints: np.ndarray, sums: np.ndarray,
             out: np.ndarray) -> bool:
    """The state shield's own check of one robot (`unacceptable_state` on its memory last_ts, repeats, latched;
    screen = (latched, fresh) (2, 1)), then `leg_chain` unless the robot is latched; True: `leg_chain` served it."""
    unacceptable_state(quat, height, ts, now, state_limits, last_ts, repeats, latched, screen)
    if screen[0, 0]:
        return False
    return leg_chain(q, v, raw, prev, valid, limits, tables, slack_level, work, ints, sums, out)


@njit(cache=True, nogil=True)
def leg_tick_passive(quat: np.ndarray, height: np.ndarray, ts: np.ndarray, now: float, state_limits: np.ndarray,
                     last_ts: np.ndarray, repeats: np.ndarray, latched: np.ndarray, screen: np.ndarray, q: np.ndarray,
                     v: np.ndarray, raw: np.ndarray, prev: np.ndarray, valid: np.ndarray, limits: np.ndarray,
                     tables: np.ndarray, slack_level: int, work: np.ndarray, ints: np.ndarray, sums: np.ndarray,
                     out: np.ndarray, tank: np.ndarray, gains: np.ndarray, tank_cfg: np.ndarray,
                     scale: np.ndarray) -> bool:
    """`leg_tick` with `leg_chain_passive`."""
    unacceptable_state(quat, height, ts, now, state_limits, last_ts, repeats, latched, screen)
    if screen[0, 0]:
        return False
    return leg_chain_passive(q, v, raw, prev, valid, limits, tables, slack_level, work, ints, sums, out, tank, gains,
                             tank_cfg, scale)


class LegPath:
    """[rate_limit, cbf (interval clip)] or [rate_limit, cbf, passivity] for one robot: `run(q, v, raw)` -> (safe
    targets (n,), safe - raw (n,), filter telemetry, |safe - raw|)."""

    def __init__(self, sanity: SanityShield, rate: RateLimiter, tables: np.ndarray,
                 tank: PassivityFilter | None = None) -> None:
        n = rate.step.shape[0]
        self.sanity, self.rate, self.tables, self.tank = sanity, rate, tables, tank
        self.limits = np.stack([sanity.lower, sanity.upper, rate.step]).astype(float)
        """The shield's target range and the limiter's step, as the kernel reads them."""
        self.work, self.ints, self.sums = np.zeros((5, n)), np.zeros(3, np.int64), np.zeros(2)
        self.flags = np.zeros((2, 1), dtype=bool)
        """`tick`'s (latched, fresh) of the state shield, valid until the next tick."""
        if tank is not None:
            self.gains = np.stack([tank.kp, tank.kd]).astype(float)
            self.tank_cfg = np.array([tank.dt, tank.cfg.tank_min, tank.cfg.tank_max, tank.cfg.refill], float)
            self.tank_init = np.full(1, tank.cfg.tank_init)
            """The tank of a robot the filter has not charged yet."""
            self.scale = np.zeros(1)

    @classmethod
    def build(cls, contract: PolicyContract, sanity: SanityShield, filters: list[Filter],
              specs: list[tuple[FilterSpec, Any]], check: bool = True) -> LegPath | None:
        """The compiled path of `filters` (built from `specs`, the registry entries and configs), or None when they
        are not what the kernels reproduce. With `check`, fresh filters from `specs` are run beside the kernel on
        random tick sequences, and any difference raises ValueError."""
        if tuple(f.name for f in filters) not in KERNEL_FILTERS:
            return None
        rate, cbf = cast(RateLimiter, filters[0]), cast(CbfFilter, filters[1])
        tables = cbf.interval_tables()
        if tables is None:
            return None
        path = cls(sanity, rate, tables, cast(PassivityFilter, filters[2]) if len(filters) == 3 else None)
        if check:
            path.verify(contract, specs)
        return path

    def run(self, q: np.ndarray, v: np.ndarray,
            raw: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any], float] | None:
        """Safe targets, safe - raw, the filters' telemetry (one robot's values) and |safe - raw| for (n,) float
        inputs, or None when the sanity shield refuses them or the result is not finite (the shields and filters then
        run, and the chain applies its backup)."""
        out = np.empty((2, raw.shape[0]))
        rate, p = self.rate, self.tank
        if p is None:
            if not leg_chain(q, v, raw, rate.prev, rate.valid, self.limits, self.tables, SLACK_LEVEL, self.work,
                             self.ints, self.sums, out):
                return None
            return self._served(out, None)
        tank = p.tank if p.tank.shape[0] == 1 else self.tank_init
        if not leg_chain_passive(q, v, raw, rate.prev, rate.valid, self.limits, self.tables, SLACK_LEVEL, self.work,
                                 self.ints, self.sums, out, tank, self.gains, self.tank_cfg, self.scale):
            return None
        return self._served(out, tank)

    def tick(self, q: np.ndarray, v: np.ndarray, raw: np.ndarray, shield: StateShield, quat: np.ndarray,
             height: np.ndarray, ts: np.ndarray, now: float,
             screen: np.ndarray) -> tuple[np.ndarray, np.ndarray, dict[str, Any], float] | None:
        """`run` behind the state shield's own check in the same compiled call (`shield.inputs` gives quat, height,
        ts; now NaN: unknown): screen (2, 1) receives (latched, fresh) as `shield.check` returns them; None when the
        robot is latched or `run` would decline."""
        out = np.empty((2, raw.shape[0]))
        rate, p = self.rate, self.tank
        if p is None:
            if not leg_tick(quat, height, ts, now, shield.limits, shield.last_ts, shield.repeats, shield.latched,
                            screen, q, v, raw, rate.prev, rate.valid, self.limits, self.tables, SLACK_LEVEL,
                            self.work, self.ints, self.sums, out):
                return None
            return self._served(out, None)
        tank = p.tank if p.tank.shape[0] == 1 else self.tank_init
        if not leg_tick_passive(quat, height, ts, now, shield.limits, shield.last_ts, shield.repeats, shield.latched,
                                screen, q, v, raw, rate.prev, rate.valid, self.limits, self.tables, SLACK_LEVEL,
                                self.work, self.ints, self.sums, out, tank, self.gains, self.tank_cfg, self.scale):
            return None
        return self._served(out, tank)

    def _served(self, out: np.ndarray,
                tank: np.ndarray | None) -> tuple[np.ndarray, np.ndarray, dict[str, Any], float]:
        """What `run` returns for a tick a kernel served (out = (safe targets, safe - raw))."""
        level, rate_active, cbf_active = self.ints.tolist()
        cbf_sq, total_sq = self.sums.tolist()
        if tank is None:
            return out[0], out[1], {
                "rate_limit/active": rate_active, "cbf/active": cbf_active, "cbf/correction_norm": math.sqrt(cbf_sq),
                "cbf/slack": 0.0, "cbf/status": RELAX_LEVELS[level], "cbf/level": level, "cbf/iterations": 0,
                "cbf/solver": "interval", "cbf/feasible": level == 0}, math.sqrt(total_sq)
        return out[0], out[1], {
            "rate_limit/active": rate_active, "cbf/active": cbf_active, "cbf/correction_norm": math.sqrt(cbf_sq),
            "cbf/slack": 0.0, "cbf/status": RELAX_LEVELS[level], "cbf/level": level, "cbf/iterations": 0,
            "cbf/solver": "interval", "cbf/feasible": level == 0, "passivity/scale": self.scale.item(),
            "passivity/tank": tank.item()}, math.sqrt(total_sq)

    def verify(self, contract: PolicyContract, specs: list[tuple[FilterSpec, Any]], sequences: int = 8,
               ticks: int = 16, seed: int = 0) -> None:
        """Run fresh filters and this kernel side by side over random tick sequences (rate-limiter memory
        included); raise ValueError on any difference in targets or telemetry."""
        rng = np.random.default_rng(seed)
        lower, upper = np.asarray(contract.joint_pos_lower, float), np.asarray(contract.joint_pos_upper, float)
        span, vmax = upper - lower, np.asarray(contract.joint_vel_limit, float)
        for _ in range(sequences):
            ref = [spec.build(contract, cfg) for spec, cfg in specs]
            mine = LegPath(self.sanity, cast(RateLimiter, ref[0]), self.tables,
                           None if self.tank is None else cast(PassivityFilter, ref[2]))
            for _ in range(ticks):
                q = lower + rng.uniform(-0.05, 1.05, lower.shape) * span
                v = rng.uniform(-1.5, 1.5) * vmax * rng.standard_normal(lower.shape)
                raw = q + rng.uniform(0.0, 0.6) * rng.standard_normal(lower.shape)
                got = mine.run(q, v, raw)
                if self.sanity.check(q[None], v[None], raw[None])[0]:
                    if got is not None:
                        raise ValueError("compiled leg path certified a tick the sanity shield refuses")
                    continue
                u = raw[None]
                info: dict[str, Any] = {}
                batch = Batch(q[None], v[None])
                for f in ref:
                    res = f.certify(batch, u)
                    u = res.targets
                    info.update({k: val[0].item() for k, val in res.info.items()})
                    if res.feasible is not None:
                        batch.feasible = res.feasible
                if got is None:
                    if np.all(np.isfinite(u)):
                        raise ValueError("compiled leg path declined a tick the filters certify")
                    continue
                if not np.array_equal(got[0], u[0]):
                    worst = np.max(np.abs(got[0] - u[0]))
                    raise ValueError(f"compiled leg path differs from the filters by {worst:.3g}")
                d = got[0] - raw
                if not np.array_equal(got[1], d):
                    raise ValueError("compiled leg path correction differs from safe - raw")
                if not math.isclose(got[3], math.sqrt(d @ d), rel_tol=1e-12, abs_tol=1e-15):
                    raise ValueError(f"compiled leg path correction {got[3]!r} != |safe - raw|")
                if got[2].keys() != info.keys():
                    raise ValueError(f"compiled leg path telemetry {sorted(got[2])}, the filters give {sorted(info)}")
                for key, val in got[2].items():
                    if type(val) is not type(info[key]) or not (val == info[key] or (
                            isinstance(val, float) and math.isclose(val, info[key], rel_tol=1e-12, abs_tol=1e-15))):
                        raise ValueError(f"compiled leg path telemetry {key} = {val!r}, the filters give {info[key]!r}")
                state = RobotState(joint_pos=q[None], joint_vel=v[None], base_quat=np.array([[1.0, 0, 0, 0]]),
                                   base_ang_vel=np.zeros((1, 3)), base_lin_acc=np.zeros((1, 3)))
                for f in ref:
                    f.commit(state, u)
