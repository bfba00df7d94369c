"""Typed configuration of every safety filter: one frozen dataclass per `{"type": ...}` entry of `contract.safety`.

Entries are parsed strictly with `robot_rl.config.from_dict` (unknown keys and wrong types are ConfigErrors naming
the field) and then checked for consistency (`validate`), so an inconsistent chain is refused when it is built.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

from robot_rl.errors import ConfigError

Backup = Literal["damping", "hold", "stand"]


def _require(ok: bool, where: str, msg: str) -> None:
    if not ok:
        raise ConfigError(f"safety{where}: {msg}")


def _per_joint(value: float | list[float], n: int, where: str) -> list[float]:
    """Broadcast a scalar or check a per-joint list."""
    if isinstance(value, list):
        _require(len(value) == n, where, f"has {len(value)} values for {n} joints")
        return [float(v) for v in value]
    return [float(value)] * n


@dataclass(frozen=True)
class SanityConfig:
    """Sanity shield: NaN/Inf, wrong length and absurd targets produce the backup action (not latched)."""

    range_tolerance: float = 1.0
    """Targets further than this [rad] outside [joint_pos_lower, joint_pos_upper] are treated as garbage."""
    backup: Backup = "hold"
    """Backup action when the shield fires: hold (current position), damping (kp=0 request), stand (pose)."""

    def validate(self, where: str, n: int) -> None:
        _require(self.range_tolerance >= 0, f"{where}.range_tolerance", "must be >= 0")


@dataclass(frozen=True)
class StateShieldConfig:
    """State shield: excessive tilt, low base, stale state or an e-stop latch the backup until `reset`."""

    max_tilt: float | None = 1.0
    """Largest angle [rad] between base z and world z; None disables."""
    min_base_height: float | None = None
    """Lowest base height [m], checked when `state.base_pos` is known; None disables."""
    max_state_age: float | None = None
    """Largest `now - state.timestamp` [s] when the caller passes `now`; None disables."""
    max_repeated_states: int | None = None
    """Consecutive ticks whose timestamp does not advance before the state counts as stale; None disables."""
    backup: Backup = "damping"
    """Latched backup: damping (kp=0, kd=damping_kd requested from the PD), hold, or stand (stand_pose)."""
    damping_kd: float | list[float] | None = None
    """Damping gain requested with the damping backup; None uses the contract kd."""
    stand_pose: list[float] | None = None
    """Stand pose for backup=stand; None uses contract.default_joint_pos."""

    def validate(self, where: str, n: int) -> None:
        if self.max_tilt is not None:
            _require(0 < self.max_tilt <= math.pi, f"{where}.max_tilt", "must be in (0, pi]")
        if self.max_state_age is not None:
            _require(self.max_state_age > 0, f"{where}.max_state_age", "must be > 0")
        if self.max_repeated_states is not None:
            _require(self.max_repeated_states >= 0, f"{where}.max_repeated_states", "must be >= 0")
        if self.damping_kd is not None:
            kd = _per_joint(self.damping_kd, n, f"{where}.damping_kd")
            _require(min(kd) >= 0, f"{where}.damping_kd", "must be >= 0")
        if self.stand_pose is not None:
            _require(len(self.stand_pose) == n, f"{where}.stand_pose", f"has {len(self.stand_pose)} values for {n}")


@dataclass(frozen=True)
class RateLimitConfig:
    """Rate limiter: each target moves at most `max_rate * policy_dt` per tick from the previous applied target."""

    max_rate: float | list[float] = 10.0
    """Largest target speed [rad/s], scalar or per joint."""

    def validate(self, where: str, n: int) -> None:
        rate = _per_joint(self.max_rate, n, f"{where}.max_rate")
        _require(min(rate) > 0, f"{where}.max_rate", "must be > 0")


@dataclass(frozen=True)
class WorkspaceConfig:
    """Cartesian constraint on an end effector, through serial-chain kinematics read from a URDF."""

    urdf: str
    """URDF file of the arm (parsed with xml.etree; no simulator)."""
    ee_link: str
    """End-effector link."""
    base_link: str | None = None
    """Root of the chain; None uses the URDF root link. Constraints are expressed in this link's frame."""
    ee_offset: list[float] = field(default_factory=lambda: [0.0, 0.0, 0.0])
    """Point on the end-effector link [m], in its frame."""
    lower: list[float] | None = None
    """Workspace box lower corner [m] (x, y, z); None: no lower faces."""
    upper: list[float] | None = None
    """Workspace box upper corner [m]; None: no upper faces."""
    keep_out: list[list[float]] = field(default_factory=list)
    """Keep-out spheres, each [x, y, z, radius] [m]."""
    margin: float = 0.01
    """Distance [m] kept from every face (covers the linearization through the Jacobian)."""

    def validate(self, where: str) -> None:
        _require(len(self.ee_offset) == 3, f"{where}.ee_offset", "needs 3 values")
        for name in ("lower", "upper"):
            box = getattr(self, name)
            _require(box is None or len(box) == 3, f"{where}.{name}", "needs 3 values")
        if self.lower is not None and self.upper is not None:
            for k in range(3):
                _require(self.lower[k] < self.upper[k], f"{where}.lower", f"lower[{k}] >= upper[{k}]")
        for i, s in enumerate(self.keep_out):
            _require(len(s) == 4 and s[3] > 0, f"{where}.keep_out[{i}]", "needs [x, y, z, radius > 0]")
        _require(self.margin >= 0, f"{where}.margin", "must be >= 0")


@dataclass(frozen=True)
class CbfConfig:
    """Discrete-time CBF-QP on PD position targets held for one policy period (see docs/safety.md)."""

    gamma: float = 1.0
    """Discrete barrier rate: h(x_{k+1}) >= (1 - gamma) h(x_k), 0 < gamma <= 1 (1: stay in the safe set)."""
    joint_inertia: float | list[float] = 0.05
    """Effective joint inertia [kg m^2] (mass-matrix diagonal + armature), scalar fallback or per joint."""
    inertia_scales: list[float] = field(default_factory=lambda: [1.0])
    """Barrier rows are written for each joint_inertia * scale (robustness to configuration-dependent inertia)."""
    disturbance_torque: float | list[float] = 0.0
    """Bound [N m] on unmodelled joint torque (gravity, coupling, contact); shrinks the limits by its effect."""
    pos_margin: float = 0.0
    """Distance [rad] kept from the position limits."""
    vel_margin: float = 0.0
    """Distance [rad/s] kept from the velocity limits."""
    lookahead_periods: int = 10
    """Policy periods after this one, holding the target, that must stay safe (recursive feasibility)."""
    torque_rows: bool = True
    """Keep the PD torque within +-torque_limit along the prediction (keeps the linear model valid)."""
    weights: list[float] | None = None
    """Diagonal QP weight W per joint; None: identity."""
    slack_penalty: float = 1.0e6
    """Penalty rho on the slack of the Cartesian rows."""
    solver: Literal["auto", "daqp"] = "auto"
    """auto: interval projection / closed form, DAQP when non-separable rows are active; daqp: always DAQP."""
    workspace: WorkspaceConfig | None = None
    """Cartesian end-effector constraint (arms)."""
    model: Literal["decoupled", "coupled"] = "decoupled"
    """decoupled: each joint alone (I q'' = PD + w; precomputed interval tables, the fast path; sound for legs
    whose coupling fits in disturbance_torque, e.g. the A1). coupled: the whole arm, M(q) from the URDF inertials
    (needs `urdf`), rows over all joints solved with DAQP; required for arms (see docs/safety.md)."""
    urdf: str | None = None
    """URDF with the inertials of the coupled model; None uses workspace.urdf."""
    base_link: str | None = None
    """Fixed base link of the coupled model; None uses workspace.base_link, else the URDF root."""
    armature: float | list[float] = 0.0
    """Reflected rotor inertia [kg m^2] added to the diagonal of M(q) (coupled model)."""
    gravity: list[float] | None = None
    """Gravity [m/s^2] in the base frame that the joint controller does NOT compensate (coupled model); None: the
    controller compensates gravity (arms), only Coriolis/centrifugal torques enter the bias."""

    def validate(self, where: str, n: int) -> None:
        _require(0 < self.gamma <= 1, f"{where}.gamma", "must be in (0, 1]")
        if self.model == "coupled":
            _require(self.urdf is not None or self.workspace is not None, f"{where}.urdf",
                     "the coupled model needs a URDF (urdf, or workspace.urdf)")
        arm = _per_joint(self.armature, n, f"{where}.armature")
        _require(min(arm) >= 0, f"{where}.armature", "must be >= 0")
        if self.gravity is not None:
            _require(len(self.gravity) == 3, f"{where}.gravity", "needs 3 values")
        inertia = _per_joint(self.joint_inertia, n, f"{where}.joint_inertia")
        _require(min(inertia) > 0, f"{where}.joint_inertia", "must be > 0")
        _require(len(self.inertia_scales) > 0 and min(self.inertia_scales) > 0,
                 f"{where}.inertia_scales", "needs positive values")
        dist = _per_joint(self.disturbance_torque, n, f"{where}.disturbance_torque")
        _require(min(dist) >= 0, f"{where}.disturbance_torque", "must be >= 0")
        _require(self.pos_margin >= 0, f"{where}.pos_margin", "must be >= 0")
        _require(self.vel_margin >= 0, f"{where}.vel_margin", "must be >= 0")
        _require(self.lookahead_periods >= 0, f"{where}.lookahead_periods", "must be >= 0")
        if self.weights is not None:
            w = _per_joint(self.weights, n, f"{where}.weights")
            _require(min(w) > 0, f"{where}.weights", "must be > 0")
        _require(self.slack_penalty > 0, f"{where}.slack_penalty", "must be > 0")
        if self.workspace is not None:
            self.workspace.validate(f"{where}.workspace")


@dataclass(frozen=True)
class PassivityConfig:
    """Energy tank (Ferraguti et al.): the policy may inject only the energy the tank holds."""

    tank_init: float = 5.0
    """Initial tank energy [J]."""
    tank_min: float = 0.5
    """Lower bound [J]; the non-passive command is scaled so the tank never goes below it."""
    tank_max: float = 10.0
    """Upper bound [J]; refilling stops there (sigma = 0)."""
    refill: float = 1.0
    """sigma: fraction of the dissipated (damping) power returned to the tank."""

    def validate(self, where: str, n: int) -> None:
        _require(self.tank_min >= 0, f"{where}.tank_min", "must be >= 0")
        _require(self.tank_min <= self.tank_init, f"{where}.tank_min", "must be <= tank_init")
        _require(self.tank_init <= self.tank_max, f"{where}.tank_init", "must be <= tank_max")
        _require(0 <= self.refill <= 1, f"{where}.refill", "must be in [0, 1]")
