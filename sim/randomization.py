"""Domain randomization shared by every task family: declared terms, one validator, one sampler, one applier.

A task family declares its terms as fields of a frozen config (a subclass of `RandomizationConfig`, which holds the
terms of every robot with PD actuators), each a `Uniform` term (range, distribution, when), says what each term is
(`TermSpec`: its shape, its nominal value, whether it may be negative, drawn as an integer, or fire at intervals) in
the class's `TERMS` table and the order they are drawn in (`ORDER`). Everything else is shared:

- validation (`RandomizationConfig.__post_init__`): finite bounds, low <= high, non-negative unless the term is an
  offset, log-uniform bounds positive, interval timing only for interval terms; one-line ConfigErrors naming the field;
- sampling (`sample_terms`, `EpisodeParams`): pure functions of (config, rng, n), terms drawn in ORDER;
- applying (`apply_to_model`): a world's values written into its own MjModel from the nominal model, through the
  per-term writers in `MODEL_WRITERS`, with ids looked up by name (`ModelIds`).

Timing: `startup` terms are drawn once when the environment is built and kept; `reset` terms are resampled at the
start of every episode of that environment; `interval` terms (pushes) fire at random times inside an episode; `never`
disables a term without losing its range. The applied values are what `info["randomization"]` and
`VecEnv.episode_params` report.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar, Literal

import mujoco
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.sim.mjmodel import name_ids, write_pd

When = Literal["startup", "reset", "interval", "never"]
Distribution = Literal["uniform", "log_uniform"]


@dataclass(frozen=True)
class Uniform:
    """One randomization term: a range, how values are drawn from it, and when they are applied."""

    low: float
    """Lower bound (inclusive)."""
    high: float
    """Upper bound; must be >= low."""
    when: When = "reset"
    """startup: drawn once per environment when it is built; reset: resampled per episode; interval: at random times
    inside an episode (interval terms only); never: not applied (not "off", which YAML reads as false)."""
    distribution: Distribution = "uniform"
    """uniform: U[low, high]; log_uniform: exp(U[log low, log high]) (bounds > 0), for scales spanning decades."""

    @property
    def active(self) -> bool:
        return self.when != "never"


@dataclass(frozen=True)
class TermSpec:
    """What a term is, as its task family declares it (not a setting: the config holds the range)."""

    shape: Literal["env", "xyz", "joints"] = "env"
    """One value per environment, per axis (3) or per contract joint."""
    nominal: float = 0.0
    """Value when the term is not drawn (disabled, `never`, or not this term's timing)."""
    signed: bool = False
    """An offset, which may be negative; other terms (scales, stds, counts) must not be."""
    integer: bool = False
    """Drawn as an integer in [ceil(low), floor(high)] (latency in physics steps)."""
    interval: bool = False
    """Fires at intervals inside an episode (pushes): timing `interval` or `never` only, never sampled per reset."""
    positive: bool = False
    """Must be > 0 when active (the time between pushes)."""


@dataclass(frozen=True)
class RandomizationConfig:
    """Base of every family's randomization section: the master switch, the terms every robot with PD actuators has
    (the environment core applies them), and the shared validation. A family adds its own terms as fields, their
    specs to TERMS and the draw order in ORDER."""

    TERMS: ClassVar[dict[str, TermSpec]] = {
        "motor_strength": TermSpec(nominal=1.0), "kp_scale": TermSpec(nominal=1.0), "kd_scale": TermSpec(nominal=1.0),
        "latency_steps": TermSpec(integer=True), "joint_pos_noise": TermSpec(), "joint_vel_noise": TermSpec()}
    """Field name -> TermSpec of every declared term (each a `Uniform` field)."""
    ORDER: ClassVar[tuple[str, ...]] = ("motor_strength", "kp_scale", "kd_scale", "joint_pos_noise",
                                        "joint_vel_noise", "latency_steps")
    """The order terms are drawn in (every name in TERMS once): part of what a seed reproduces."""

    enabled: bool = True
    """Master switch; False simulates the nominal world (evaluation, sim-to-sim checks)."""
    motor_strength: Uniform = field(default_factory=lambda: Uniform(0.9, 1.1))
    """Scale on the PD torque before the torque limit (walk-these-ways' range)."""
    kp_scale: Uniform = field(default_factory=lambda: Uniform(0.9, 1.1))
    """Scale on the proportional gain (gain calibration error)."""
    kd_scale: Uniform = field(default_factory=lambda: Uniform(0.9, 1.1))
    """Scale on the derivative gain."""
    latency_steps: Uniform = field(default_factory=lambda: Uniform(0, 4))
    """Action latency in physics steps, an integer drawn per episode (0-20 ms at 200 Hz)."""
    joint_pos_noise: Uniform = field(default_factory=lambda: Uniform(0.0, 0.01))
    """Std of white noise on measured joint positions [rad], drawn per episode then applied every step."""
    joint_vel_noise: Uniform = field(default_factory=lambda: Uniform(0.0, 1.5))
    """Std of white noise on measured joint velocities [rad/s]."""

    def __post_init__(self) -> None:
        fields = {f.name for f in dataclasses.fields(self) if f.type in ("Uniform", Uniform)}
        if sorted(self.ORDER) != sorted(self.TERMS) or set(self.TERMS) != fields:
            raise TypeError(f"{type(self).__name__}: ORDER, TERMS and the Uniform fields must name the same terms")
        for name, term, spec in self.terms():
            where = f"randomization.{name}"
            if not (np.isfinite(term.low) and np.isfinite(term.high)):
                raise ConfigError(f"{where}: bounds must be finite")
            if term.low > term.high:
                raise ConfigError(f"{where}: range is inverted (low {term.low} > high {term.high})")
            if not spec.signed and term.low < 0:
                raise ConfigError(f"{where}: range must not be negative (low {term.low})")
            if term.distribution == "log_uniform" and term.low <= 0:
                raise ConfigError(f"{where}: a log_uniform range needs low > 0 (low {term.low})")
            if spec.interval and term.when not in ("interval", "never"):
                raise ConfigError(f"{where}: applies at intervals or never, not '{term.when}'")
            if not spec.interval and term.when == "interval":
                raise ConfigError(f"{where}: applies at startup, at reset or never, not at intervals")
            if spec.positive and term.active and term.low <= 0:
                raise ConfigError(f"{where}: values must be positive (low {term.low})")

    def terms(self) -> Iterator[tuple[str, Uniform, TermSpec]]:
        """(name, term, spec) of every declared term, in ORDER (the order values are drawn in)."""
        for name in self.ORDER:
            yield name, getattr(self, name), self.TERMS[name]

    def drawn_at(self, name: str, when: When) -> bool:
        """Does term `name` get drawn with this timing (randomization enabled, term active with it)?"""
        return self.enabled and getattr(self, name).when == when

    def upper(self, name: str) -> float:
        """Largest value term `name` can take in an episode (its nominal value when it is never drawn)."""
        term: Uniform = getattr(self, name)
        spec = self.TERMS[name]
        if not self.enabled or term.when not in ("startup", "reset"):
            return spec.nominal
        return float(np.floor(term.high)) if spec.integer else term.high


def _width(spec: TermSpec, num_joints: int) -> tuple[int, ...]:
    return {"env": (), "xyz": (3,), "joints": (num_joints,)}[spec.shape]


def _draw(term: Uniform, spec: TermSpec, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    if spec.integer:
        return rng.integers(int(np.ceil(term.low)), int(np.floor(term.high)) + 1, size=shape)
    if term.distribution == "log_uniform":
        return np.exp(rng.uniform(np.log(term.low), np.log(term.high), size=shape))
    return rng.uniform(term.low, term.high, size=shape)


def sample_terms(cfg: RandomizationConfig, rng: np.random.Generator, n: int, num_joints: int,
                 when: When = "reset") -> dict[str, np.ndarray]:
    """Values of the terms drawn with timing `when` for n environments, in ORDER (none when disabled)."""
    out: dict[str, np.ndarray] = {}
    if not cfg.enabled:
        return out
    for name, term, spec in cfg.terms():
        if not spec.interval and term.when == when:
            out[name] = _draw(term, spec, rng, (n, *_width(spec, num_joints)))
    return out


class EpisodeParams:
    """Per-environment randomization values of every declared (non-interval) term: what info['randomization']
    reports. Index like a dict: `params["kp_scale"]` is (N,), `params["com_offset"]` (N, 3)."""

    def __init__(self, values: dict[str, np.ndarray]) -> None:
        self.values = values

    @classmethod
    def nominal(cls, cfg: RandomizationConfig, n: int, num_joints: int) -> EpisodeParams:
        values = {}
        for name, _, spec in cfg.terms():
            if not spec.interval:
                dtype = np.int64 if spec.integer else np.float64
                values[name] = np.full((n, *_width(spec, num_joints)), spec.nominal, dtype)
        return cls(values)

    def __getitem__(self, name: str) -> np.ndarray:
        return self.values[name]

    def assign(self, rows: np.ndarray, drawn: dict[str, np.ndarray]) -> None:
        for k, v in drawn.items():
            self.values[k][rows] = v

    def row(self, i: int) -> dict[str, float | list[float]]:
        return {k: np.asarray(v[i]).tolist() for k, v in self.values.items()}

    def as_dict(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self.values.items()}


def sample_episode_params(cfg: RandomizationConfig, rng: np.random.Generator, n: int,
                          num_joints: int) -> EpisodeParams:
    """One episode's values for n environments: nominal, with the `reset` terms drawn."""
    params = EpisodeParams.nominal(cfg, n, num_joints)
    params.assign(np.arange(n), sample_terms(cfg, rng, n, num_joints))
    return params


# ---- applying to a MuJoCo model ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class ModelIds:
    """Ids the model writers write to, looked up by name once per model (-1 / empty: the model has none)."""

    floor_geom: int = -1
    base_body: int = -1
    object_body: int = -1
    object_geom: int = -1
    damped_dofs: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    """Dofs whose passive damping `joint_damping` adds to."""

    @classmethod
    def lookup(cls, model: mujoco.MjModel, floor: str | None = None, base: str | None = None,
               obj: str | None = None, damped_joints: list[str] | None = None) -> ModelIds:
        def one(kind: mujoco.mjtObj, name: str | None) -> int:
            return -1 if name is None else int(name_ids(model, kind, [name])[0])

        dofs = [int(model.jnt_dofadr[model.joint(j).id]) for j in damped_joints or []]
        return cls(floor_geom=one(mujoco.mjtObj.mjOBJ_GEOM, floor), base_body=one(mujoco.mjtObj.mjOBJ_BODY, base),
                   object_body=one(mujoco.mjtObj.mjOBJ_BODY, obj), object_geom=one(mujoco.mjtObj.mjOBJ_GEOM, obj),
                   damped_dofs=np.array(dofs, np.int64))


ModelWriter = Callable[[mujoco.MjModel, mujoco.MjModel, ModelIds, float | np.ndarray], None]
"""(model, nominal, ids, value of one world) -> None: writes one term, starting from the nominal model."""


def _friction(model: mujoco.MjModel, nominal: mujoco.MjModel, ids: ModelIds, v: float | np.ndarray) -> None:
    model.geom_friction[ids.floor_geom, 0] = v


def _added_mass(model: mujoco.MjModel, nominal: mujoco.MjModel, ids: ModelIds, v: float | np.ndarray) -> None:
    model.body_mass[ids.base_body] = nominal.body_mass[ids.base_body] + v


def _com_offset(model: mujoco.MjModel, nominal: mujoco.MjModel, ids: ModelIds, v: float | np.ndarray) -> None:
    model.body_ipos[ids.base_body] = nominal.body_ipos[ids.base_body] + v


def _object_mass(model: mujoco.MjModel, nominal: mujoco.MjModel, ids: ModelIds, v: float | np.ndarray) -> None:
    b = ids.object_body
    model.body_mass[b] = nominal.body_mass[b] * v
    model.body_inertia[b] = nominal.body_inertia[b] * v  # object_size then scales it by size^2


def _object_size(model: mujoco.MjModel, nominal: mujoco.MjModel, ids: ModelIds, v: float | np.ndarray) -> None:
    g = ids.object_geom
    model.geom_size[g] = nominal.geom_size[g] * v
    model.geom_rbound[g] = nominal.geom_rbound[g] * v
    model.geom_aabb[g] = nominal.geom_aabb[g] * v
    model.body_inertia[ids.object_body] *= v ** 2


def _object_friction(model: mujoco.MjModel, nominal: mujoco.MjModel, ids: ModelIds, v: float | np.ndarray) -> None:
    model.geom_friction[ids.object_geom, 0] = v


def _joint_damping(model: mujoco.MjModel, nominal: mujoco.MjModel, ids: ModelIds, v: float | np.ndarray) -> None:
    model.dof_damping[ids.damped_dofs] = nominal.dof_damping[ids.damped_dofs] + v


MODEL_WRITERS: dict[str, ModelWriter] = {
    "friction": _friction,
    "added_mass": _added_mass,
    "com_offset": _com_offset,
    "object_mass": _object_mass,
    "object_size": _object_size,
    "object_friction": _object_friction,
    "joint_damping": _joint_damping,
}
"""Term name -> writer into the world's model, applied in this order (object_mass before object_size: the inertia
is nominal * mass * size^2). The PD terms (motor_strength, kp_scale, kd_scale) are written together by
`write_gains`; sensor noise and latency terms act outside the model."""


def write_gains(model: mujoco.MjModel, p: EpisodeParams, i: int, kp: np.ndarray, kd: np.ndarray,
                torque_limit: np.ndarray) -> None:
    """World i's PD law: gains scaled by its kp_scale / kd_scale, torque by motor_strength."""
    write_pd(model, kp * p["kp_scale"][i], kd * p["kd_scale"][i], p["motor_strength"][i], torque_limit)


def apply_to_model(model: mujoco.MjModel, nominal: mujoco.MjModel, ids: ModelIds, p: EpisodeParams, i: int,
                   kp: np.ndarray, kd: np.ndarray, torque_limit: np.ndarray, scratch: mujoco.MjData) -> None:
    """Write world i's values into its own model, starting from the nominal model, so values never accumulate over
    episodes. `scratch` is overwritten: mj_setConst recomputes the constants derived from masses (subtree masses,
    the constraint solver's inverse weights) at qpos0, or contacts turn too stiff after a mass change."""
    for name, writer in MODEL_WRITERS.items():
        if name in p.values:
            writer(model, nominal, ids, p[name][i])
    write_gains(model, p, i, kp, kd, torque_limit)
    mujoco.mj_setConst(model, scratch)
