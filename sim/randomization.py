"""Domain randomization: every range declared in config with when it applies, sampled by pure functions of
(config, rng, n), written into each environment's own MjModel by functions that look ids up by name.

Timing: `reset` terms are resampled at the start of every episode of that environment; `interval` terms (pushes)
fire at random intervals inside an episode; `never` disables a term without losing its range.
Ranges follow legged_gym, walk-these-ways and MuJoCo Playground's Go1 tasks.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Literal

import mujoco
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.sim.mjmodel import name_ids, write_pd

When = Literal["reset", "interval", "never"]


@dataclass(frozen=True)
class Uniform:
    """A uniform range U[low, high] and when it is applied."""

    low: float
    """Lower bound (inclusive)."""
    high: float
    """Upper bound; must be >= low."""
    when: When = "reset"
    """reset: resampled per episode; interval: at random times inside an episode; never: not applied
    (not "off", which YAML reads as false)."""

    @property
    def active(self) -> bool:
        return self.when != "never"


# Field name -> may the range go below zero (an offset) or not (a scale, a std, a count)?
_SIGNED = {"added_mass", "com_offset", "joint_pos_bias", "ang_vel_bias"}


@dataclass(frozen=True)
class RandomizationConfig:
    """Per-episode randomization of the simulated robot, its sensors and its world."""

    enabled: bool = True
    """Master switch; False simulates the nominal robot (evaluation, sim-to-sim checks)."""
    friction: Uniform = field(default_factory=lambda: Uniform(0.5, 1.25))
    """Ground sliding friction coefficient (legged_gym's range)."""
    added_mass: Uniform = field(default_factory=lambda: Uniform(-1.0, 2.0))
    """Mass added to the trunk [kg] (payload, battery variants)."""
    com_offset: Uniform = field(default_factory=lambda: Uniform(-0.03, 0.03))
    """Trunk centre-of-mass shift per axis [m]."""
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
    ang_vel_noise: Uniform = field(default_factory=lambda: Uniform(0.0, 0.2))
    """Std of white noise on the gyro [rad/s]."""
    quat_noise: Uniform = field(default_factory=lambda: Uniform(0.0, 0.02))
    """Std of noise on the orientation quaternion components (renormalized) [-]."""
    joint_pos_bias: Uniform = field(default_factory=lambda: Uniform(-0.02, 0.02))
    """Constant per-episode encoder offset per joint [rad]."""
    ang_vel_bias: Uniform = field(default_factory=lambda: Uniform(-0.05, 0.05))
    """Constant per-episode gyro bias per axis [rad/s]."""
    push_interval_s: Uniform = field(default_factory=lambda: Uniform(4.0, 10.0, "interval"))
    """Time between random pushes [s]; each wait is drawn from this range."""
    push_velocity: Uniform = field(default_factory=lambda: Uniform(0.0, 1.0, "interval"))
    """Magnitude of the horizontal base velocity change of a push [m/s], random direction."""

    def __post_init__(self) -> None:
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if not isinstance(value, Uniform):
                continue
            if not (np.isfinite(value.low) and np.isfinite(value.high)):
                raise ConfigError(f"randomization.{f.name}: bounds must be finite")
            if value.low > value.high:
                raise ConfigError(f"randomization.{f.name}: range is inverted (low {value.low} > high {value.high})")
            if f.name not in _SIGNED and value.low < 0:
                raise ConfigError(f"randomization.{f.name}: range must not be negative (low {value.low})")
        if self.push_interval_s.active and self.push_interval_s.low <= 0:
            raise ConfigError("randomization.push_interval_s: intervals must be positive")


@dataclass
class EpisodeParams:
    """Values sampled for a batch of environments: what info['randomization'] reports."""

    friction: np.ndarray
    added_mass: np.ndarray
    com_offset: np.ndarray
    motor_strength: np.ndarray
    kp_scale: np.ndarray
    kd_scale: np.ndarray
    latency_steps: np.ndarray
    joint_pos_noise: np.ndarray
    joint_vel_noise: np.ndarray
    ang_vel_noise: np.ndarray
    quat_noise: np.ndarray
    joint_pos_bias: np.ndarray
    ang_vel_bias: np.ndarray

    @classmethod
    def nominal(cls, n: int, num_joints: int) -> EpisodeParams:
        z = np.zeros(n)
        return cls(friction=np.ones(n), added_mass=z.copy(), com_offset=np.zeros((n, 3)),
                   motor_strength=np.ones(n), kp_scale=np.ones(n), kd_scale=np.ones(n),
                   latency_steps=np.zeros(n, np.int64), joint_pos_noise=z.copy(), joint_vel_noise=z.copy(),
                   ang_vel_noise=z.copy(), quat_noise=z.copy(), joint_pos_bias=np.zeros((n, num_joints)),
                   ang_vel_bias=np.zeros((n, 3)))

    def assign(self, rows: np.ndarray, other: EpisodeParams) -> None:
        for f in dataclasses.fields(self):
            getattr(self, f.name)[rows] = getattr(other, f.name)

    def row(self, i: int) -> dict[str, float | list[float]]:
        return {f.name: np.asarray(getattr(self, f.name)[i]).tolist() for f in dataclasses.fields(self)}

    def as_dict(self) -> dict[str, np.ndarray]:
        return {f.name: getattr(self, f.name).copy() for f in dataclasses.fields(self)}


def sample_episode_params(cfg: RandomizationConfig, rng: np.random.Generator, n: int,
                          num_joints: int) -> EpisodeParams:
    """Draw one episode's values for n environments (nominal values for inactive terms or when disabled)."""
    out = EpisodeParams.nominal(n, num_joints)
    if not cfg.enabled:
        return out

    def draw(term: Uniform, shape: tuple[int, ...]) -> np.ndarray | None:
        return rng.uniform(term.low, term.high, size=shape) if term.when == "reset" else None

    for name, shape in (("friction", (n,)), ("added_mass", (n,)), ("com_offset", (n, 3)),
                        ("motor_strength", (n,)), ("kp_scale", (n,)), ("kd_scale", (n,)),
                        ("joint_pos_noise", (n,)), ("joint_vel_noise", (n,)), ("ang_vel_noise", (n,)),
                        ("quat_noise", (n,)), ("joint_pos_bias", (n, num_joints)), ("ang_vel_bias", (n, 3))):
        value = draw(getattr(cfg, name), shape)
        if value is not None:
            setattr(out, name, value)
    lat = cfg.latency_steps
    if lat.when == "reset":
        out.latency_steps = rng.integers(int(np.ceil(lat.low)), int(np.floor(lat.high)) + 1, size=n)
    return out


@dataclass(frozen=True)
class ModelIds:
    """Ids the randomization writes to, looked up by name once per model."""

    floor_geom: int
    base_body: int

    @classmethod
    def lookup(cls, model: mujoco.MjModel, floor: str, base: str) -> ModelIds:
        return cls(floor_geom=int(name_ids(model, mujoco.mjtObj.mjOBJ_GEOM, [floor])[0]),
                   base_body=int(name_ids(model, mujoco.mjtObj.mjOBJ_BODY, [base])[0]))


def apply_to_model(model: mujoco.MjModel, nominal: mujoco.MjModel, ids: ModelIds, p: EpisodeParams, i: int,
                   kp: np.ndarray, kd: np.ndarray, torque_limit: np.ndarray, scratch: mujoco.MjData) -> None:
    """Write environment i's sampled physical values into its own model, starting from the nominal model, so
    values never accumulate over episodes. `scratch` is overwritten: mj_setConst recomputes the constants derived
    from masses (subtree masses, the constraint solver's inverse weights) at qpos0."""
    model.geom_friction[ids.floor_geom, 0] = p.friction[i]
    model.body_mass[ids.base_body] = nominal.body_mass[ids.base_body] + p.added_mass[i]
    model.body_ipos[ids.base_body] = nominal.body_ipos[ids.base_body] + p.com_offset[i]
    write_pd(model, kp * p.kp_scale[i], kd * p.kd_scale[i], p.motor_strength[i], torque_limit)
    mujoco.mj_setConst(model, scratch)


def push_velocity(cfg: RandomizationConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2) horizontal base velocity kicks: uniform magnitude, uniform direction."""
    mag = rng.uniform(cfg.push_velocity.low, cfg.push_velocity.high, size=n)
    ang = rng.uniform(0.0, 2 * np.pi, size=n)
    return np.stack([mag * np.cos(ang), mag * np.sin(ang)], axis=-1)


def next_push_delay(cfg: RandomizationConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds until the next push, or +inf when pushes are disabled."""
    if not cfg.enabled or cfg.push_interval_s.when != "interval" or cfg.push_velocity.when == "never":
        return np.full(n, np.inf)
    return rng.uniform(cfg.push_interval_s.low, cfg.push_interval_s.high, size=n)
