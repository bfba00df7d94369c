"""The safety chain: filters in contract order, one backup, telemetry. `certify` never raises."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from robot_rl.config import from_dict
from robot_rl.contract import PolicyContract
from robot_rl.errors import ConfigError
from robot_rl.safety.cbf import RELAX_LEVELS, SLACK_LEVEL, CbfFilter
from robot_rl.safety.config import CONFIGS, SanityConfig, StateShieldConfig
from robot_rl.safety.intervals import leg_chain
from robot_rl.safety.passivity import PassivityFilter
from robot_rl.safety.shields import RateLimiter, SanityShield, StateShield
from robot_rl.state import RobotState


def parse_safety(contract: PolicyContract) -> list[tuple[str, Any]]:
    """Typed, validated (name, config) pairs of `contract.safety`; ConfigError names the offending field."""
    out: list[tuple[str, Any]] = []
    seen: set[str] = set()
    for i, entry in enumerate(contract.safety):
        where = f"safety[{i}]"
        if not isinstance(entry, dict) or "type" not in entry:
            raise ConfigError(f"{where}: expected a mapping with a 'type' key, got {entry!r}")
        name = entry["type"]
        if name not in CONFIGS:
            raise ConfigError(f"{where}.type: unknown filter {name!r} (choose from {', '.join(CONFIGS)})")
        if name in seen:
            raise ConfigError(f"{where}.type: filter {name!r} appears twice")
        seen.add(name)
        params = {k: v for k, v in entry.items() if k != "type"}
        cfg = from_dict(CONFIGS[name], params, where)
        cfg.validate(f"[{i}]", contract.num_joints)
        out.append((name, cfg))
    return out


def build_chain(contract: PolicyContract) -> SafetyChain:
    """Build the chain configured by `contract.safety` (ordered list of `{"type": name, ...params}`)."""
    return SafetyChain(contract, parse_safety(contract))


class SafetyChain:
    """Shields, CBF-QP and passivity filter in contract order, with one backup action.

    `certify(state, targets)` returns `(safe_targets, info)`. Input sanity (shapes, finiteness) is always checked
    first; a `sanity` entry only tunes it. When a shield fires, the targets are replaced by the backup on the same
    tick (a `state` shield or `estop` latches it until `reset`). Any exception inside a filter also yields the
    backup, with the reason in `info["safety/reason"]`.
    """

    def __init__(self, contract: PolicyContract, configs: list[tuple[str, Any]]) -> None:
        self.contract = contract
        self.n = contract.num_joints
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
        self.filters: list[Any] = []
        self.cbf: CbfFilter | None = None
        for name, cfg in configs:
            if name == "rate_limit":
                self.filters.append(RateLimiter(contract, cfg))
            elif name == "cbf":
                self.cbf = CbfFilter(contract, cfg)
                self.filters.append(self.cbf)
            elif name == "passivity":
                self.filters.append(PassivityFilter(contract, cfg, self.cbf))
        self._committers = [f for f in self.filters if hasattr(f, "commit")]
        self._commit_single = [f.commit for f in self._committers]
        self._fast = _LegFastPath.build(self)
        """The rate limiter + separable CBF chain of the legged robots in one compiled call (None: other chains)."""
        self._estop_reason = ""
        self._batch_estop = False
        self._last = self.stand_pose.copy()

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
        self._batch_estop = True

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Release latches and forget filter state for the selected environments (all when mask is None)."""
        if mask is None:
            self._estop_reason = ""
            self._batch_estop = False
        if self.state_shield is not None:
            self.state_shield.reset(mask)
        for f in self.filters:
            f.reset(mask)

    # ---- single robot ----------------------------------------------------------------------------------------
    def certify(self, state: RobotState, targets: Any, now: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Safe targets (n,) and telemetry. Never raises: malformed input gives the backup and the reason."""
        info: dict[str, Any] = {}
        shield, reason = "", ""
        try:
            raw = np.asarray(targets, dtype=float)
        except (TypeError, ValueError):
            raw = np.full(self.n, np.nan)
            shield, reason = "sanity", "targets are not numeric"
        try:
            if not reason:
                reason = self._latched_reason(state, now)
                shield = "state" if reason else ""
            if not reason and self._fast is not None:
                done = self._fast.certify(state, raw)
                if done is not None:
                    return done
            if not reason:
                reason = self.sanity.reason(state, raw)
                shield = "sanity" if reason else ""
            if not reason:
                u = raw
                for f in self.filters:
                    u, finfo = f.certify(state, u)
                    info.update(finfo)
                if not math.isfinite(np.add.reduce(u)):  # any NaN/Inf makes the sum non-finite
                    shield, reason = "chain", "a filter returned non-finite targets"
        except Exception as exc:  # noqa: BLE001 - certify must never raise; the reason is telemetry
            shield, reason = "chain", f"{type(exc).__name__}: {exc}"
        backup = bool(reason)
        if backup:
            u = self.backup(state)
            corr = np.where(np.isfinite(raw), u - raw, 0.0) if raw.shape == u.shape else np.zeros(self.n)
        else:
            corr = u - raw  # raw passed the sanity checks: finite, right shape
        self._last = u
        for commit in self._commit_single:
            try:
                out = commit(state, u)
            except Exception:  # noqa: BLE001 - a telemetry failure must not stop the robot
                out = None
            if out:
                info.update(out)
        norm = math.sqrt(corr @ corr)
        sh = self.state_shield
        info.update({"safety/correction": corr, "safety/correction_norm": norm,
                     "safety/intervened": backup or norm > 1e-9, "safety/backup": backup, "safety/shield": shield,
                     "safety/reason": reason,
                     "safety/latched": bool(self._estop_reason) or (sh is not None and sh.latched),
                     "safety/damping": backup and self.backup_mode == "damping"})
        return u, info

    def _commit(self, method: str, state: RobotState, applied: np.ndarray, info: dict[str, Any]) -> None:
        """Tell stateful filters (rate limiter, tank) which targets were finally applied."""
        for f in self._committers:
            try:
                out = getattr(f, method)(state, applied)
            except Exception:  # noqa: BLE001 - a telemetry failure must not stop the robot
                out = None
            if out:
                info.update(out)

    def _latched_reason(self, state: RobotState, now: float | None) -> str:
        if self._estop_reason:
            return f"e-stop: {self._estop_reason}"
        sh = self.state_shield
        if sh is None:
            return ""
        if sh.latched:
            return f"latched: {sh.latch_reason}"
        why = sh.check(state, now)
        if why:
            sh.latched, sh.latch_reason = True, why
        return why

    # ---- batch -------------------------------------------------------------------------------------------------
    def certify_batch(self, state: RobotState, targets: Any,
                      now: float | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Safe targets (N, n) and telemetry arrays (N,) for a batched state. Never raises."""
        num = _batch_size(state)
        info: dict[str, Any] = {}
        try:
            raw = np.asarray(targets, dtype=float)
            if raw.shape != (num, self.n):
                raise ValueError(f"targets have shape {raw.shape}, expected ({num}, {self.n})")
            q = np.asarray(state.joint_pos, dtype=float)
            v = np.asarray(state.joint_vel, dtype=float)
            if q.shape != (num, self.n) or v.shape != (num, self.n):
                raise ValueError(f"state joints have shapes {q.shape}, {v.shape}, expected ({num}, {self.n})")
            bad = self.sanity.reason_batch(state, raw)
            latched = np.zeros(num, dtype=bool)
            if self.state_shield is not None:
                sh = self.state_shield
                fired = sh.check_batch(state, now)
                sh.batch_latched |= fired
                latched = sh.batch_latched.copy()
            if self._batch_estop:
                latched[:] = True
            fire = bad | latched
            work_state = state
            u = raw
            if fire.any():
                q_ok = np.where(fire[:, None] | ~np.isfinite(q), 0.0, q)
                v_ok = np.where(fire[:, None] | ~np.isfinite(v), 0.0, v)
                work_state = RobotState(joint_pos=q_ok, joint_vel=v_ok, base_quat=state.base_quat,
                                        base_ang_vel=state.base_ang_vel, base_lin_acc=state.base_lin_acc,
                                        timestamp=state.timestamp, base_pos=state.base_pos)
                u = np.where(fire[:, None], q_ok, raw)
            for f in self.filters:
                u, finfo = f.certify_batch(work_state, u)
                info.update(finfo)
            nonfinite = ~np.all(np.isfinite(u), axis=1)
            fire |= nonfinite
            if fire.any():
                u = np.where(fire[:, None], self.backup(state), u)
            reason = np.where(latched, "latched", np.where(bad, "sanity", np.where(nonfinite, "chain", "")))
        except Exception as exc:  # noqa: BLE001 - certify_batch must never raise
            n_env = num if num > 0 else 1
            u = np.broadcast_to(self.backup(state), (n_env, self.n)).astype(float)
            if u.shape[0] != n_env:
                u = np.tile(self.stand_pose, (n_env, 1))
            fire = np.ones(n_env, dtype=bool)
            latched = np.zeros(n_env, dtype=bool)
            reason = np.full(n_env, f"{type(exc).__name__}: {exc}")
            raw = np.full_like(u, np.nan)
        self._commit("commit_batch", state, u, info)
        corr = np.where(np.isfinite(raw), u - raw, 0.0) if raw.shape == u.shape else np.zeros_like(u)
        norm = np.sqrt(np.einsum("ij,ij->i", corr, corr))
        info["safety/correction"] = corr
        info["safety/correction_norm"] = norm
        info["safety/intervened"] = fire | (norm > 1e-9)
        info["safety/backup"] = fire
        info["safety/latched"] = latched
        info["safety/reason"] = reason
        info["safety/damping"] = fire & (self.backup_mode == "damping")
        return u, info


class _LegFastPath:
    """`SafetyChain.certify` for the chain [rate_limit, cbf (decoupled, no workspace, interval solver)] behind the
    shields: everything after the state shield is `safety.intervals.leg_chain`, one compiled call, with the same
    targets and telemetry as the filters' own code (tests/safety/test_safety_leg_fast_path.py compares them over
    random tick sequences). Anything unusual (a failed check, a non-finite result, other array types) returns None
    and the reference path runs, so every backup and its reason come from the filters' own code."""

    def __init__(self, chain: SafetyChain, rate: RateLimiter, cbf: CbfFilter) -> None:
        n = chain.n
        self.chain, self.rate, self.cbf = chain, rate, cbf
        self.mid, self.half = chain.sanity.mid, chain.sanity.half
        self.step = np.ascontiguousarray(rate.step, dtype=float)
        self.window = np.zeros((2, n))
        self._lo, self._hi = self.window[0], self.window[1]
        """The rate limiter's window as this path leaves it (views; a reference tick replaces them)."""
        self.box, self.level = np.zeros((2, n)), np.zeros(1, np.int64)
        self.u_rate, self.u = np.zeros(n), np.zeros(n)
        self.counts, self.sums = np.zeros(2, np.int64), np.zeros(2)

    @classmethod
    def build(cls, chain: SafetyChain) -> _LegFastPath | None:
        f = chain.filters
        if len(f) != 2 or not isinstance(f[0], RateLimiter) or not isinstance(f[1], CbfFilter):
            return None
        cbf = f[1]
        if cbf.coupled is not None or cbf.workspace is not None or cbf.cfg.solver == "daqp":
            return None
        return cls(chain, f[0], cbf)

    def certify(self, state: RobotState, raw: np.ndarray) -> tuple[np.ndarray, dict[str, Any]] | None:
        q, v, n = state.joint_pos, state.joint_vel, self.chain.n
        if type(q) is not np.ndarray or type(v) is not np.ndarray or q.shape != (n,) or v.shape != (n,) or \
                raw.shape != (n,) or q.dtype != np.float64 or v.dtype != np.float64:
            return None
        rate = self.rate
        window = rate._window  # noqa: SLF001 - the limiter's own state, kept in step below
        if window is not None and window[0] is not self._lo:  # a reference tick committed its own window
            self._lo[:], self._hi[:] = window
        if not leg_chain(q, v, raw, self.mid, self.half, self.window, window is not None, self.step, self.cbf._stacked,
                         SLACK_LEVEL, self.box, self.level, self.u_rate, self.u, self.counts, self.sums):
            return None
        u = self.u.copy()
        rate.prev = u.copy()
        rate._window = (self._lo, self._hi)  # noqa: SLF001
        cbf, level = self.cbf, int(self.level[0])
        cbf.box_lower, cbf.box_upper = self.box[0], self.box[1]  # views: the interval of the last call, no copy
        chain = self.chain
        chain._last = u  # noqa: SLF001
        norm = math.sqrt(self.sums[1])
        sh = chain.state_shield
        return u, {"rate_limit/active": int(self.counts[0]), "cbf/active": int(self.counts[1]),
                   "cbf/correction_norm": math.sqrt(self.sums[0]), "cbf/slack": 0.0,
                   "cbf/status": RELAX_LEVELS[level], "cbf/level": level, "cbf/iterations": 0,
                   "cbf/solver": "interval", "cbf/feasible": level == 0,
                   "safety/correction": u - raw, "safety/correction_norm": norm, "safety/intervened": norm > 1e-9,
                   "safety/backup": False, "safety/shield": "", "safety/reason": "",
                   "safety/latched": bool(chain._estop_reason) or (sh is not None and sh.latched),  # noqa: SLF001
                   "safety/damping": False}


def _batch_size(state: RobotState) -> int:
    try:
        shape = np.shape(state.joint_pos)
        return int(shape[0]) if len(shape) == 2 else 0
    except Exception:  # noqa: BLE001
        return 0
