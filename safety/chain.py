"""The safety chain: shields, then the registered filters in contract order, one backup, telemetry. Never raises.

Everything is batched: `certify_batch` runs N robots, `certify` runs one robot as a batch of one through the same
code (and reports its telemetry as plain values). The only single-robot special is an accelerated path
(safety/fast.py), built from the filters and checked against them.
"""

from __future__ import annotations

import functools
import math
from typing import Any

import numpy as np
from numba import njit

from robot_rl.config import from_dict
from robot_rl.contract import PolicyContract
from robot_rl.control_step import INTERVENTION_TOL
from robot_rl.errors import ConfigError
from robot_rl.safety.config import SanityConfig, StateShieldConfig
from robot_rl.safety.fast import LegPath
from robot_rl.safety.protocol import Batch, Filter, FilterSpec, row_norms
from robot_rl.safety.registry import FILTERS, SHIELDS, config_class, entry_names
from robot_rl.safety.shields import SanityShield, StateShield
from robot_rl.state import RobotState

_NONFINITE = "a filter returned non-finite targets"
_HEALTHY = {"safety/backup": False, "safety/shield": "", "safety/reason": "", "safety/latched": False,
            "safety/damping": False}
"""The chain's telemetry of one robot on which no shield fired."""


def parse_safety(contract: PolicyContract) -> list[tuple[str, Any]]:
    """Typed, validated (name, config) pairs of `contract.safety`; ConfigError names the offending field."""
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for i, entry in enumerate(contract.safety):
        where = f"safety[{i}]"
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(f"{where}: expected a mapping with a 'type' key, got {entry!r}")
        name = entry["type"]
        cls = config_class(name)
        if cls is None:
            raise ConfigError(f"{where}.type: unknown filter {name!r} (choose from {', '.join(entry_names())})")
        if name in seen:
            raise ConfigError(f"{where}.type: filter {name!r} appears twice")
        seen.add(name)
        params = {k: v for k, v in entry.items() if k != "type"}
        cfg = from_dict(cls, params, where)
        cfg.validate(f"[{i}]", contract.num_joints)
        out.append((name, cfg))
    return out


def build_chain(contract: PolicyContract) -> SafetyChain:
    """Build the chain configured by `contract.safety` (ordered list of `{"type": name, ...params}`)."""
    return SafetyChain(contract, parse_safety(contract))


class _Screen:
    """What the shields decided for a batch: the robots to put on the backup, and why."""

    def __init__(self, bad: np.ndarray, latched: np.ndarray, fresh: np.ndarray) -> None:
        self.bad, self.latched, self.fresh = bad, latched, fresh
        """(N,) sanity fired; backup latched (e-stop or state shield); latched on this very tick."""
        self.fire = bad | latched


class SafetyChain:
    """Shields, then the filters (rate limiter, CBF-QP, passivity, ...) in contract order, with one backup action.

    `certify(state, targets)` returns `(safe_targets, info)`. Input sanity (shapes, finiteness) is always checked
    first; a `sanity` entry only tunes it. When a shield fires, the targets are replaced by the backup on the same
    tick (a `state` shield or `estop` latches it until `reset`). Any exception inside a filter also yields the
    backup, with the reason in `info["safety/reason"]`.
    """

    def __init__(self, contract: PolicyContract, configs: list[tuple[str, Any]]) -> None:
        self.contract = contract
        self.n = contract.num_joints
        self._norm_bound = math.sqrt(self.n) * INTERVENTION_TOL
        """Above this correction norm some joint moved by more than INTERVENTION_TOL for certain."""
        self.names = [name for name, _ in configs]
        by_name = dict(configs)
        self.sanity = SanityShield(contract, by_name.get("sanity", SanityConfig()))
        self.state_shield = StateShield(contract, by_name["state"]) if "state" in by_name else None
        backup_cfg = by_name.get("state", StateShieldConfig(backup=by_name.get("sanity", SanityConfig()).backup))
        self.backup_mode = backup_cfg.backup
        kd = contract.kd if backup_cfg.damping_kd is None else backup_cfg.damping_kd
        self.damping_kd = np.broadcast_to(np.asarray(kd, float), (self.n,)).copy()
        self.stand_pose = np.asarray(backup_cfg.stand_pose if backup_cfg.stand_pose is not None
                                     else contract.default_joint_pos, float)
        specs: list[tuple[FilterSpec, Any]] = [(FILTERS[name], cfg) for name, cfg in configs if name not in SHIELDS]
        self.filters: list[Filter] = [spec.build(contract, cfg) for spec, cfg in specs]
        self._commits = [f.commit for f in self.filters]
        """Every filter's `commit`, in chain order."""
        self._fast = LegPath.build(contract, self.sanity, self.filters, specs)
        """The filters as one compiled call for one robot (None: no such kernel for these filters)."""
        self._estop_reason = ""
        self._last = self.stand_pose.copy()

    @property
    def cbf(self) -> Filter | None:
        """The chain's `cbf` filter, if any."""
        return next((f for f in self.filters if f.name == "cbf"), None)

    # ---- backup ------------------------------------------------------------------------------------------------
    def backup(self, state: RobotState) -> np.ndarray:
        """Backup targets: hold / damping -> current position (last applied target if it is unusable); stand."""
        if self.backup_mode == "stand":
            return self.stand_pose.copy()
        try:
            q = np.asarray(state.joint_pos, dtype=float)
        except (TypeError, ValueError):
            return self._last.copy()
        if q.shape == (self.n,) and np.all(np.isfinite(q)):
            return q.copy()
        if q.ndim == 2 and q.shape[1] == self.n:
            return np.where(np.isfinite(q), q, self.stand_pose)
        return self._last.copy()

    def estop(self, reason: str = "e-stop") -> None:
        """Latch the backup now (single robot and every batched environment) until `reset`."""
        self._estop_reason = reason or "e-stop"

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Release latches and forget filter state for the selected environments (all when mask is None)."""
        if mask is None:
            self._estop_reason = ""
        if self.state_shield is not None:
            self.state_shield.reset(mask)
        for f in self.filters:
            f.reset(mask)

    # ---- one robot: a batch of one -------------------------------------------------------------------------------
    def certify(self, state: RobotState, targets: Any, now: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Safe targets (n,) and telemetry (plain values). Never raises: malformed input gives the backup and the
        reason."""
        try:
            raw = np.asarray(targets, dtype=float)
        except (TypeError, ValueError):
            return self._single(*self._fallback(state, 1, "sanity", "targets are not numeric"))
        try:
            why = self.sanity.shape_reason(state.joint_pos, state.joint_vel, raw, ())
            if why:
                return self._single(*self._fallback(state, 1, "sanity", why))
            q1, v1 = np.asarray(state.joint_pos, dtype=float), np.asarray(state.joint_vel, dtype=float)
            fast, sh = self._fast, self.state_shield
            if fast is not None and sh is not None and not self._estop_reason:
                # the state shield's check and the filters in one compiled call
                quat, height, ts = sh.inputs(state, 1)
                flags = fast.flags  # read within this tick only (the telemetry below becomes plain values)
                done = fast.tick(q1, v1, raw, sh, quat, height, ts, math.nan if now is None else now, flags)
                if done is not None:
                    return self._single_fast(state, *done)
                latched, fresh = flags[0], flags[1]  # not served: the shields and filters below say why
                if fresh[0]:
                    sh.record(fresh, quat, height, ts, now)
            else:
                latched, fresh = self._latch(state, now, 1)
                if fast is not None and not latched[0]:
                    done = fast.run(q1, v1, raw)  # None: the shields and filters below say why
                    if done is not None:
                        return self._single_fast(state, *done)
            q, v, raw2 = q1[None], v1[None], raw[None]
            screen = _Screen(self.sanity.check(q, v, raw2), latched, fresh)
            u, filter_info, failed = self._filter(q, v, raw2, screen.fire)
            u, commit, tel = self._finish(state, q, v, raw2, u, screen, failed)
        except Exception as exc:  # noqa: BLE001 - certify must never raise; the reason is telemetry
            return self._single(*self._fallback(state, 1, "chain", f"{type(exc).__name__}: {exc}", raw[None]))
        # a robot on its backup reports no filter telemetry: the filters did not shape what it got
        return self._single(u, {} if tel["safety/backup"][0] else filter_info, commit, tel)

    def _single(self, u: np.ndarray, *parts: dict[str, Any]) -> tuple[np.ndarray, dict[str, Any]]:
        """One robot's view of a batch of one: its row, and its telemetry as plain values."""
        self._last = u[0]
        return u[0], {k: val.item() if val.ndim == 1 else val[0] for part in parts for k, val in part.items()}

    def _single_fast(self, state: RobotState, u: np.ndarray, corr: np.ndarray, info: dict[str, Any],
                     norm: float) -> tuple[np.ndarray, dict[str, Any]]:
        """Finish a tick the compiled path certified: commit, then the telemetry `_tell` gives such a tick."""
        for key, val in self._commit(state, u[None]).items():
            info[key] = _value(val)
        info["safety/correction"] = corr
        info["safety/correction_norm"] = norm
        # the norm bounds the largest element from above and sqrt(n) times it from below: most ticks skip the max
        info["safety/intervened"] = norm > INTERVENTION_TOL and (norm > self._norm_bound
                                                                  or float(np.abs(corr).max()) > INTERVENTION_TOL)
        info.update(_HEALTHY)
        self._last = u
        return u, info

    # ---- batch -------------------------------------------------------------------------------------------------
    def certify_batch(self, state: RobotState, targets: Any,
                      now: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Safe targets (N, n) and telemetry arrays (N,) for a batched state. Never raises."""
        num = _batch_size(state)
        try:
            raw = np.asarray(targets, dtype=float)
            why = self.sanity.shape_reason(state.joint_pos, state.joint_vel, raw, (num,))
            if why:
                raise ValueError(why)
            q, v = np.asarray(state.joint_pos, dtype=float), np.asarray(state.joint_vel, dtype=float)
            screen = _Screen(self.sanity.check(q, v, raw), *self._latch(state, now, num))
            u, filter_info, failed = self._filter(q, v, raw, screen.fire)
            u, commit, tel = self._finish(state, q, v, raw, u, screen, failed)
        except Exception as exc:  # noqa: BLE001 - certify_batch must never raise
            u, commit, tel = self._fallback(state, max(num, 1), "chain", f"{type(exc).__name__}: {exc}")
            filter_info = {}
        return u, {**filter_info, **commit, **tel}

    # ---- the one implementation ----------------------------------------------------------------------------------
    def _latch(self, state: RobotState, now: float | None, num: int) -> tuple[np.ndarray, np.ndarray]:
        """(N,) robots whose backup is latched (state shield or e-stop), and those the state shield latched now."""
        sh = self.state_shield
        if sh is None:
            fresh = np.zeros(num, dtype=bool)
            return np.full(num, bool(self._estop_reason)), fresh
        latched, fresh = sh.check(*sh.inputs(state, num), now)
        if self._estop_reason:
            latched[:] = True
        return latched, fresh

    def _filter(self, q: np.ndarray, v: np.ndarray, raw: np.ndarray,
                fire: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray], np.ndarray | None]:
        """The filters in order on every row (rows the shields fired for hold q, with finite stand-ins); returns
        the targets, the filters' telemetry and the rows a filter could not certify."""
        u = raw
        if np.count_nonzero(fire):
            q = np.where(fire[:, None] | ~np.isfinite(q), 0.0, q)
            v = np.where(fire[:, None] | ~np.isfinite(v), 0.0, v)
            u = np.where(fire[:, None], q, raw)
        batch = Batch(q, v)
        info: dict[str, np.ndarray] = {}
        failed = None
        for f in self.filters:
            res = f.certify(batch, u)
            u = res.targets
            info.update(res.info)
            if res.failed is not None:
                failed = res.failed if failed is None else failed | res.failed
            if res.feasible is not None:
                batch.feasible = res.feasible
        return u, info, failed

    def _finish(self, state: RobotState, q: np.ndarray, v: np.ndarray, raw: np.ndarray, u: np.ndarray,
                screen: _Screen, failed: np.ndarray | None) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
        """Backup for every fired, failed or non-finite row; commit; the chain's telemetry."""
        nonfinite = _nonfinite_rows(u)
        failed = nonfinite if failed is None else failed | nonfinite
        fire = screen.fire | failed
        if np.count_nonzero(fire):
            u = np.where(fire[:, None], self.backup(state), u)
            shield, reason = self._reasons(q, v, raw, screen, failed)
            # rows with a non-finite raw target fired: their correction counts only the finite entries
            corr = np.where(np.isfinite(raw), u - raw, 0.0)
            return u, self._commit(state, u), self._tell(corr, fire, screen.latched, shield, reason)
        blank = _blank(fire.shape[0])
        return u, self._commit(state, u), self._tell(u - raw, fire, screen.latched, blank, blank)

    def _fallback(self, state: RobotState, num: int, shield: str, reason: str,
                  raw: np.ndarray | None = None) -> tuple[np.ndarray, dict[str, Any], dict[str, Any]]:
        """Every robot on its backup (inputs the shields cannot read, or an exception); the correction counts the
        finite entries of `raw` when it has the batch's shape."""
        u = np.broadcast_to(self.backup(state), (num, self.n)).astype(float)
        if u.shape[0] != num:
            u = np.tile(self.stand_pose, (num, 1))
        latched = np.full(num, bool(self._estop_reason))
        if self.state_shield is not None and self.state_shield.latched.shape[0] == num:
            latched |= self.state_shield.latched
        corr = np.where(np.isfinite(raw), u - raw, 0.0) if raw is not None and raw.shape == u.shape else \
            np.zeros_like(u)
        tel = self._tell(corr, np.ones(num, dtype=bool), latched, np.full(num, shield), np.full(num, reason))
        return u, self._commit(state, u), tel

    def _reasons(self, q: np.ndarray, v: np.ndarray, raw: np.ndarray, screen: _Screen,
                 failed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Which shield fired for each robot on its backup, and why ("" for the others)."""
        num = q.shape[0]
        shields, reasons = [""] * num, [""] * num
        sh = self.state_shield
        for i in np.flatnonzero(screen.fire | failed):
            if self._estop_reason:
                shields[i], reasons[i] = "state", f"e-stop: {self._estop_reason}"
            elif screen.latched[i] and sh is not None:
                why = sh.latch_reason[i]
                shields[i], reasons[i] = "state", why if screen.fresh[i] else f"latched: {why}"
            elif screen.bad[i]:
                shields[i], reasons[i] = "sanity", self.sanity.explain(q[i], v[i], raw[i])
            else:
                shields[i], reasons[i] = "chain", _NONFINITE
        return np.array(shields), np.array(reasons)

    def _commit(self, state: RobotState, applied: np.ndarray) -> dict[str, Any]:
        """Tell every filter which targets were finally applied (rate limiter, tank); their telemetry."""
        info: dict[str, Any] = {}
        for commit in self._commits:
            try:
                info.update(commit(state, applied))
            except Exception:  # noqa: BLE001 - a telemetry failure must not stop the robot
                continue
        return info

    def _tell(self, corr: np.ndarray, fire: np.ndarray, latched: np.ndarray, shield: np.ndarray,
              reason: np.ndarray) -> dict[str, Any]:
        """The chain's telemetry: correction (applied - raw), backup, which shield, why, latch, damping."""
        norm = row_norms(corr)
        moved = np.abs(corr).max(axis=-1) > INTERVENTION_TOL  # the control step's rule: any joint beyond the tolerance
        return {"safety/correction": corr, "safety/correction_norm": norm, "safety/intervened": fire | moved,
                "safety/backup": fire, "safety/shield": shield, "safety/reason": reason, "safety/latched": latched,
                "safety/damping": fire & (self.backup_mode == "damping")}


@njit(cache=True, nogil=True)
def _nonfinite_rows(u: np.ndarray) -> np.ndarray:
    """(N,) rows of u (N, n) holding a NaN or an infinity."""
    out = np.zeros(u.shape[0], dtype=np.bool_)
    for e in range(u.shape[0]):
        for j in range(u.shape[1]):
            if u[e, j] - u[e, j] != 0.0:
                out[e] = True
                break
    return out


@functools.cache
def _blank(num: int) -> np.ndarray:
    """`num` empty strings (the shield and reason of robots on which no shield fired); shared and read-only."""
    out = np.full(num, "")
    out.flags.writeable = False
    return out


def _value(val: Any) -> Any:
    """One robot's value of a batched telemetry entry: row 0, as a plain Python value when it is a scalar."""
    return val.item() if val.ndim == 1 else val[0]


def _batch_size(state: RobotState) -> int:
    try:
        shape = np.shape(state.joint_pos)
        return int(shape[0]) if len(shape) == 2 else 0
    except Exception:  # noqa: BLE001
        return 0
