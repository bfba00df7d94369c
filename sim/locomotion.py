"""Velocity tracking for legged robots: config sections, reward terms as named pure functions, terminations, and
the task object the vectorized environment drives. A robot's task file (e.g. robots/a1/walk.py) only chooses
defaults and names the robot's bodies and sensors.

Reward weights are per second: the environment multiplies each term by its weight and the policy period, as
legged_gym does, so weights do not change when the control rate does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import mujoco
import numpy as np

from robot_rl.contract import ActionSpec, ObsTerm, PolicyContract
from robot_rl.control_step import ActionCodec, JointPositionCodec
from robot_rl.errors import ConfigError
from robot_rl.rewards import weighted_sum
from robot_rl.sim.mjmodel import FLOOR, SensorSlices, as_slice
from robot_rl.sim.randomization import ModelIds, RandomizationConfig, TermSpec, Uniform
from robot_rl.sim.step_kernels import rotate_inverse_and_gravity, sensor_noise, swing_times
from robot_rl.sim.task import Batch, ControlRates, LoggedSteps, TaskBase, TaskConfig, contract_basics
from robot_rl.state import RobotState, projected_gravity


# ---- config sections -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ControlConfig(ControlRates):
    """Rates and the PD law shared with the robot (rates: 200 Hz physics, 50 Hz policy, legged_gym's)."""

    kp: float = 20.0
    """Joint stiffness [N m/rad] (legged_gym A1)."""
    kd: float = 0.5
    """Joint damping gain [N m s/rad]."""
    action_scale: float = 0.25
    """q_des = default + action_scale * clip(action, -action_clip, action_clip)."""
    action_clip: float = 1.0
    """Bound on the policy action (in action units; the safety chain bounds the targets further)."""

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.kp < 0 or self.kd < 0 or self.action_scale <= 0 or self.action_clip <= 0:
            raise ConfigError("control: kp, kd must be >= 0, action_scale and action_clip > 0")


def _check_range(name: str, rng: tuple[float, float]) -> None:
    if rng[0] > rng[1]:
        raise ConfigError(f"{name}: range is inverted ({rng[0]} > {rng[1]})")


@dataclass(frozen=True)
class CommandConfig:
    """Velocity command ranges, sampled uniformly once per episode (base frame)."""

    vx: tuple[float, float] = (-1.0, 1.0)
    """Forward velocity [m/s]."""
    vy: tuple[float, float] = (-0.5, 0.5)
    """Lateral velocity [m/s]."""
    yaw_rate: tuple[float, float] = (-1.0, 1.0)
    """Yaw rate [rad/s]."""

    def __post_init__(self) -> None:
        for name in ("vx", "vy", "yaw_rate"):
            _check_range(f"commands.{name}", getattr(self, name))


@dataclass(frozen=True)
class RewardConfig:
    """Weights (per second) of the named reward terms and their shape parameters; 0 disables a term."""

    tracking_lin_vel: float = 1.0
    """exp(-|v_xy - cmd_xy|^2 / tracking_sigma)."""
    tracking_ang_vel: float = 0.5
    """exp(-(w_z - cmd_yaw)^2 / tracking_sigma)."""
    lin_vel_z: float = -2.0
    """Vertical base velocity squared."""
    ang_vel_xy: float = -0.05
    """Roll and pitch rates squared."""
    orientation: float = -1.0
    """Horizontal components of projected gravity squared (tilt)."""
    base_height: float = -10.0
    """(base height - base_height_target)^2."""
    torques: float = -0.0002
    """Sum of squared joint torques, averaged over physics steps."""
    action_rate: float = -0.01
    """Squared change of the applied action between policy steps."""
    joint_limits: float = -10.0
    """Distance beyond the soft joint limits (radians outside)."""
    feet_air_time: float = 1.0
    """Sum over touchdowns of (air time - feet_air_time_target), only when the command asks to move."""
    collision: float = -1.0
    """Number of thigh/calf geoms touching the ground."""
    safety_intervention: float = -0.1
    """Squared correction of the action by the safety chain (zero when running unfiltered). Small: under
    exploration the chain corrects most steps, and a heavy weight outweighs the tracking reward, so `only_positive`
    zeroes most steps and nothing is learned (docs/safety.md, Training cost on the A1)."""
    safety_intervened: float = 0.0
    """1 on every policy step on which the safety chain changed the action: the count deployment reports as
    interventions per tick. The squared term above hardly sees the rate limiter's small clips, so fine-tuning with
    it alone does not bring the count down. Off when training from scratch (early exploration is corrected on most
    steps); fine-tuning a deployed policy to intervene less sets it (docs/replay.md)."""
    tracking_sigma: float = 0.25
    """Width of the tracking kernels [(m/s)^2]."""
    base_height_target: float = 0.28
    """Desired base height [m]."""
    soft_joint_limit: float = 0.9
    """Fraction of the joint range inside which no joint-limit penalty is paid."""
    feet_air_time_target: float = 0.25
    """Swing duration that earns zero air-time reward [s]. legged_gym uses 0.5 s; a trot at 2-3 Hz swings for
    0.15-0.25 s, so a 0.5 s target makes every trot step a penalty and teaches the policy to keep its feet
    planted."""
    only_positive: bool = True
    """Clip the total reward at zero (legged_gym): avoids learning to end episodes early."""


@dataclass(frozen=True)
class TerminationConfig:
    """When an episode ends."""

    episode_length_s: float = 20.0
    """Time limit [s]; reaching it is a truncation, not a termination."""
    max_tilt: float = 1.0
    """Angle between base z axis and vertical that counts as a fall [rad]."""
    contacts: tuple[str, ...] = ("trunk", "thigh")
    """Bodies whose ground contact is a fall: any of trunk, thigh, calf."""
    contact_force: float = 1.0
    """Touch force above which a contact counts [N]."""

    def __post_init__(self) -> None:
        bad = [c for c in self.contacts if c not in ("trunk", "thigh", "calf")]
        if bad:
            raise ConfigError(f"termination.contacts: unknown body group {bad[0]} (choose trunk, thigh, calf)")
        if self.episode_length_s <= 0 or self.max_tilt <= 0:
            raise ConfigError("termination: episode_length_s and max_tilt must be positive")


@dataclass(frozen=True)
class InitConfig:
    """Initial-state distribution at reset."""

    joint_noise: float = 0.1
    """Uniform offset on every joint from the default pose [rad]."""
    base_velocity: float = 0.3
    """Uniform initial base linear velocity per horizontal axis [m/s]."""
    random_yaw: bool = True
    """Uniform initial heading."""


@dataclass(frozen=True)
class LeggedRandomizationConfig(RandomizationConfig):
    """Randomization of a legged robot, its sensors and its world (ranges follow legged_gym, walk-these-ways and
    MuJoCo Playground's Go1); the PD, latency and joint noise terms are RandomizationConfig's."""

    TERMS: ClassVar[dict[str, TermSpec]] = {
        **RandomizationConfig.TERMS, "friction": TermSpec(nominal=1.0), "added_mass": TermSpec(signed=True),
        "com_offset": TermSpec(shape="xyz", signed=True), "ang_vel_noise": TermSpec(), "quat_noise": TermSpec(),
        "joint_pos_bias": TermSpec(shape="joints", signed=True), "ang_vel_bias": TermSpec(shape="xyz", signed=True),
        "push_interval_s": TermSpec(interval=True, positive=True), "push_velocity": TermSpec(interval=True)}
    ORDER: ClassVar[tuple[str, ...]] = (
        "friction", "added_mass", "com_offset", "motor_strength", "kp_scale", "kd_scale", "joint_pos_noise",
        "joint_vel_noise", "ang_vel_noise", "quat_noise", "joint_pos_bias", "ang_vel_bias", "latency_steps",
        "push_interval_s", "push_velocity")

    friction: Uniform = field(default_factory=lambda: Uniform(0.5, 1.25))
    """Ground sliding friction coefficient (legged_gym's range)."""
    added_mass: Uniform = field(default_factory=lambda: Uniform(-1.0, 2.0))
    """Mass added to the trunk [kg] (payload, battery variants)."""
    com_offset: Uniform = field(default_factory=lambda: Uniform(-0.03, 0.03))
    """Trunk centre-of-mass shift per axis [m]."""
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


def push_velocity(cfg: LeggedRandomizationConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """(n, 2) horizontal base velocity kicks: uniform magnitude, uniform direction."""
    mag = rng.uniform(cfg.push_velocity.low, cfg.push_velocity.high, size=n)
    ang = rng.uniform(0.0, 2 * np.pi, size=n)
    return np.stack([mag * np.cos(ang), mag * np.sin(ang)], axis=-1)


def next_push_delay(cfg: LeggedRandomizationConfig, rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds until the next push, or +inf when pushes are disabled."""
    if not cfg.enabled or cfg.push_interval_s.when != "interval" or cfg.push_velocity.when == "never":
        return np.full(n, np.inf)
    return rng.uniform(cfg.push_interval_s.low, cfg.push_interval_s.high, size=n)


STRICT_GROUND_OVERRIDES = ("safety.disturbance_torque=4.0", "safety.pos_margin=0.15", "safety.lookahead_periods=10")
"""Task overrides for a CBF that keeps joint limits even when ground contact pushes the legs (adversarial
policies), at the price of forbidding an ordinary trot; see LocomotionSafetyConfig.disturbance_torque."""


@dataclass(frozen=True)
class LocomotionSafetyConfig:
    """The safety chain the task writes into its contract (robot_rl.safety; docs/safety.md has every field)."""

    max_tilt: float = 1.0
    """State shield: base tilt [rad] that latches the damping backup until the episode resets."""
    min_base_height: float | None = 0.12
    """State shield: lowest base height [m] (checked when the state carries base_pos); None disables."""
    max_rate: float = 20.0
    """Rate limiter: largest target speed [rad/s]."""
    gamma: float = 1.0
    """CBF discrete barrier rate; 1 = stay inside the limits at every physics step (gamma < 1 also caps how fast a
    joint at rest may approach a limit, which on the A1 clipped ordinary actions and made the robot fall)."""
    inertia_scales: tuple[float, ...] = (0.5, 1.0, 2.0)
    """CBF rows are written for the joint inertia times each scale (configuration-dependent inertia)."""
    disturbance_torque: float = 2.0
    """CBF bound [N m] on torque the per-joint model leaves out (gravity, coupling, ground contact). Keep it well
    below what the PD can hold (kp x half the joint range): at 8 N m with kp 20 no target is feasible at rest.
    Defaults (2 N m, pos_margin 0.1, 3 look-ahead periods) let a trained trot through. The strict set
    STRICT_GROUND_OVERRIDES (4 N m, 0.15 rad, 10 periods) also holds the limits against an adversarial policy on
    the ground, but corrects nearly every tick of a walking policy, which then falls (docs/safety.md)."""
    pos_margin: float = 0.1
    """CBF distance [rad] kept from the joint limits (encoder bias and noise, contact pushes)."""
    vel_margin: float = 2.0
    """CBF distance [rad/s] kept from the velocity limits."""
    lookahead_periods: int = 3
    """CBF: policy periods after this one, holding the target, that must stay inside the limits."""

    def entries(self, joint_inertia: list[float]) -> list[dict]:
        """The ordered `contract.safety` entries: sanity, state (damping backup), rate limit, decoupled CBF."""
        return [{"type": "sanity"},
                {"type": "state", "max_tilt": self.max_tilt, "min_base_height": self.min_base_height,
                 "backup": "damping"},
                {"type": "rate_limit", "max_rate": self.max_rate},
                {"type": "cbf", "model": "decoupled", "joint_inertia": joint_inertia, "gamma": self.gamma,
                 "inertia_scales": list(self.inertia_scales), "disturbance_torque": self.disturbance_torque,
                 "pos_margin": self.pos_margin, "vel_margin": self.vel_margin,
                 "lookahead_periods": self.lookahead_periods}]


@dataclass(frozen=True)
class LocomotionConfig(TaskConfig):
    """A velocity-tracking task: everything tunable, saved beside every run."""

    control: ControlConfig = field(default_factory=ControlConfig)
    """Rates and PD law."""
    commands: CommandConfig = field(default_factory=CommandConfig)
    """Command ranges."""
    rewards: RewardConfig = field(default_factory=RewardConfig)
    """Reward weights."""
    termination: TerminationConfig = field(default_factory=TerminationConfig)
    """Episode end conditions."""
    init: InitConfig = field(default_factory=InitConfig)
    """Reset distribution."""
    randomization: LeggedRandomizationConfig = field(default_factory=LeggedRandomizationConfig)
    """Domain randomization ranges and timing."""
    safety: LocomotionSafetyConfig = field(default_factory=LocomotionSafetyConfig)
    """Safety chain written into the contract (used in training when the env is built with safety=True)."""
    ang_vel_obs_scale: float = 0.25
    """Observation scale of the gyro term (legged_gym)."""
    joint_vel_obs_scale: float = 0.05
    """Observation scale of the joint velocity term."""


# ---- the robot as the task sees it -----------------------------------------------------------------------------
@dataclass(frozen=True)
class LeggedRobot:
    """What a velocity task needs to know about a legged robot; its model folder provides it."""

    name: str
    joint_names: list[str]
    default_joint_pos: np.ndarray
    torque_limit: np.ndarray
    velocity_limit: np.ndarray
    base_body: str
    feet: list[str]
    """Touch sensors of the feet are named `<foot>_touch`."""
    thighs: list[str]
    calves: list[str]
    build_model: Callable[[ControlConfig], mujoco.MjModel]
    """Compiled model with a `home` keyframe, sensors imu_quat/imu_gyro/imu_acc and `<part>_touch`."""
    source: str = ""
    """Where the model comes from (provenance)."""
    urdf: str = ""
    """The URDF the model is built from (the PyBullet engine loads the same file)."""


# ---- what reward terms see -------------------------------------------------------------------------------------
@dataclass
class StepView:
    """Batched quantities after a policy step (views into the environment's buffers; do not keep them)."""

    base_lin_vel: np.ndarray
    """(N, 3) base frame [m/s]."""
    base_ang_vel: np.ndarray
    base_quat: np.ndarray
    base_height: np.ndarray
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    torques: np.ndarray
    """(N, decimation, n) applied actuator torques of every physics step."""
    action: np.ndarray
    """(N, n) applied action (after the safety chain)."""
    last_action: np.ndarray
    policy_action: np.ndarray
    """(N, n) clipped action as the policy produced it."""
    intervened: np.ndarray
    """(N,) bool: the safety chain changed this step's targets (the control step's flag)."""
    command: np.ndarray
    feet_touch: np.ndarray
    thigh_touch: np.ndarray
    calf_touch: np.ndarray
    trunk_touch: np.ndarray
    air_time: np.ndarray
    """(N, feet) swing time so far, before touchdown resets it."""
    first_contact: np.ndarray
    """(N, feet) bool: foot touched down this step."""
    gravity: np.ndarray | None = None
    """(N, 3) unit gravity in the base frame of base_quat, when the environment already computed it (rewards and
    terminations both need it; None: computed from base_quat)."""


def _gravity(s: StepView) -> np.ndarray:
    return s.gravity if s.gravity is not None else projected_gravity(s.base_quat)


def r_tracking_lin_vel(s: StepView, c: RewardConfig) -> np.ndarray:
    err = np.square(s.command[:, :2] - s.base_lin_vel[:, :2]).sum(axis=1)
    return np.exp(-err / c.tracking_sigma)


def r_tracking_ang_vel(s: StepView, c: RewardConfig) -> np.ndarray:
    return np.exp(-np.square(s.command[:, 2] - s.base_ang_vel[:, 2]) / c.tracking_sigma)


def r_lin_vel_z(s: StepView, c: RewardConfig) -> np.ndarray:
    return np.square(s.base_lin_vel[:, 2])


def r_ang_vel_xy(s: StepView, c: RewardConfig) -> np.ndarray:
    return np.square(s.base_ang_vel[:, :2]).sum(axis=1)


def r_orientation(s: StepView, c: RewardConfig) -> np.ndarray:
    return np.square(_gravity(s)[:, :2]).sum(axis=1)


def r_base_height(s: StepView, c: RewardConfig) -> np.ndarray:
    return np.square(s.base_height - c.base_height_target)


def r_torques(s: StepView, c: RewardConfig) -> np.ndarray:
    return np.square(s.torques).sum(axis=(1, 2)) / s.torques.shape[1]


def r_action_rate(s: StepView, c: RewardConfig) -> np.ndarray:
    return np.square(s.action - s.last_action).sum(axis=1)


def r_feet_air_time(s: StepView, c: RewardConfig) -> np.ndarray:
    moving = np.sqrt(np.square(s.command[:, :2]).sum(axis=1)) > 0.1
    return ((s.air_time - c.feet_air_time_target) * s.first_contact).sum(axis=1) * moving


def r_collision(s: StepView, c: RewardConfig) -> np.ndarray:
    return (s.thigh_touch > 1.0).sum(axis=1) + (s.calf_touch > 1.0).sum(axis=1)


def r_safety_intervention(s: StepView, c: RewardConfig) -> np.ndarray:
    return np.square(s.action - s.policy_action).sum(axis=1)


def r_safety_intervened(s: StepView, c: RewardConfig) -> np.ndarray:
    return s.intervened.astype(float)


REWARD_TERMS: dict[str, Callable[[StepView, RewardConfig], np.ndarray]] = {
    "tracking_lin_vel": r_tracking_lin_vel,
    "tracking_ang_vel": r_tracking_ang_vel,
    "lin_vel_z": r_lin_vel_z,
    "ang_vel_xy": r_ang_vel_xy,
    "orientation": r_orientation,
    "base_height": r_base_height,
    "torques": r_torques,
    "action_rate": r_action_rate,
    "feet_air_time": r_feet_air_time,
    "collision": r_collision,
    "safety_intervention": r_safety_intervention,
    "safety_intervened": r_safety_intervened,
}
"""Every term named in RewardConfig; the joint-limit term needs the robot's limits and lives on the task."""


class LocomotionTask(TaskBase):
    """A velocity-tracking task for one legged robot: model, contract, commands, rewards, terminations."""

    def __init__(self, name: str, robot: LeggedRobot, cfg: LocomotionConfig) -> None:
        super().__init__(name, robot, cfg)
        self.robot: LeggedRobot = robot
        self.cfg: LocomotionConfig = cfg
        m = self.model
        if m.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE:
            raise ConfigError(f"task {name}: locomotion models must start with a free joint")
        lo, hi = self.joint_lower, self.joint_upper
        mid, half = (lo + hi) / 2, (hi - lo) / 2 * cfg.rewards.soft_joint_limit
        self._soft_lo, self._soft_hi = mid - half, mid + half
        self.reward_terms: dict[str, Callable[[StepView, RewardConfig], np.ndarray]] = {
            **REWARD_TERMS, "joint_limits": self._r_joint_limits}
        self.reward_weights = {k: float(getattr(cfg.rewards, k)) for k in self.reward_terms}
        self.reward_config = cfg.rewards
        self.contract = self._build_contract()
        self.param_ids = ModelIds.lookup(m, floor=FLOOR, base=robot.base_body)
        self._tilt_limit = -np.cos(cfg.termination.max_tilt)
        """Projected gravity's z above this: tilted past max_tilt."""
        self.command = np.zeros((0, 3))
        self.fall_tilt = cfg.termination.max_tilt
        self.only_positive = cfg.rewards.only_positive

    # ---- contract ----------------------------------------------------------------------------------------------
    def joint_inertia(self) -> np.ndarray:
        """Diagonal of the joint-space mass matrix at the default pose: what the CBF uses as per-joint inertia.

        MuJoCo's M already includes the armature (reflected rotor inertia) on its diagonal.
        """
        data = mujoco.MjData(self.model)
        mujoco.mj_resetDataKeyframe(self.model, data, self.model.key("home").id)
        mujoco.mj_forward(self.model, data)
        full = np.zeros((self.model.nv, self.model.nv))
        mujoco.mj_fullM(self.model, data, full)
        dofs = [int(self.model.jnt_dofadr[self.model.joint(j).id]) for j in self.robot.joint_names]
        return np.diag(full)[dofs].copy()

    def _build_contract(self) -> PolicyContract:
        c, r = self.cfg.control, self.robot
        n = len(r.joint_names)
        terms = [ObsTerm("base_ang_vel", 3, scale=self.cfg.ang_vel_obs_scale),
                 ObsTerm("projected_gravity", 3),
                 ObsTerm("command", 3),
                 ObsTerm("joint_pos_rel", n),
                 ObsTerm("joint_vel", n, scale=self.cfg.joint_vel_obs_scale),
                 ObsTerm("last_action", n)]
        cmd = self.cfg.commands
        return PolicyContract(
            **contract_basics(self.name, r, self.joint_lower, self.joint_upper, c, self.cfg),
            kp=[c.kp] * n,
            kd=[c.kd] * n,
            action=ActionSpec(type="joint_position", scale=c.action_scale, clip=c.action_clip),
            obs_terms=terms,
            command_names=["vx", "vy", "yaw_rate"],
            command_ranges=[(r[0], r[1]) for r in (cmd.vx, cmd.vy, cmd.yaw_rate)],
            safety=self.cfg.safety.entries(self.joint_inertia().round(6).tolist()),
        )

    # ---- episode -----------------------------------------------------------------------------------------------
    def sample_commands(self, rng: np.random.Generator, n: int) -> np.ndarray:
        cmd = self.cfg.commands
        lo = np.array([cmd.vx[0], cmd.vy[0], cmd.yaw_rate[0]])
        hi = np.array([cmd.vx[1], cmd.vy[1], cmd.yaw_rate[1]])
        return rng.uniform(lo, hi, size=(n, 3))

    def initial_state(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(qpos, qvel) of one fresh episode: home keyframe, joint noise, random heading and base velocity."""
        key = self.model.key("home")
        qpos, qvel = key.qpos.copy(), np.zeros(self.model.nv)
        init = self.cfg.init
        jadr = [int(self.model.jnt_qposadr[self.model.joint(j).id]) for j in self.robot.joint_names]
        qpos[jadr] += rng.uniform(-init.joint_noise, init.joint_noise, size=len(jadr))
        lo, hi = self.joint_lower, self.joint_upper
        qpos[jadr] = np.clip(qpos[jadr], lo, hi)
        if init.random_yaw:
            yaw = rng.uniform(-np.pi, np.pi)
            qpos[3:7] = [np.cos(yaw / 2), 0.0, 0.0, np.sin(yaw / 2)]
        qvel[0:2] = rng.uniform(-init.base_velocity, init.base_velocity, size=2)
        return qpos, qvel

    # ---- the task in the environment core (robot_rl.sim.task.Task) ------------------------------------------------
    def codec(self) -> ActionCodec:
        return JointPositionCodec(self.contract)

    def allocate(self, batch: Batch, rng: np.random.Generator) -> None:
        self._b = b = batch
        m, r, n = self.model, self.robot, batch.num_envs
        nq = m.nq
        jq = np.array([m.jnt_qposadr[m.joint(j).id] for j in r.joint_names])
        jv = np.array([m.jnt_dofadr[m.joint(j).id] for j in r.joint_names])
        self._jq = slice(1 + jq[0], 2 + jq[-1]) if np.all(np.diff(jq) == 1) else 1 + jq
        self._jv = slice(1 + nq + jv[0], 2 + nq + jv[-1]) if np.all(np.diff(jv) == 1) else 1 + nq + jv
        # views kept for the life of the env (the core only ever writes its buffers in place)
        self._qpos_v = b.state[:, 1:1 + nq]
        self._qvel_v = b.state[:, 1 + nq:1 + nq + m.nv]
        self._lin_vel, self._gravity = np.zeros((n, 3)), np.zeros((n, 3))
        sl = SensorSlices.of(m)
        self._s_acc = sl.slices["imu_acc"]
        self._s_feet = as_slice(sl.columns([f"{f}_touch" for f in r.feet]))
        self._s_thigh = as_slice(sl.columns([f"{t}_touch" for t in r.thighs]))
        self._s_calf = as_slice(sl.columns([f"{c}_touch" for c in r.calves]))
        self._s_trunk = sl.slices[f"{r.base_body}_touch"].start
        # the reward's torque term reads a gather, not a view: its joint-major layout fixes the summation order,
        # and with it the bits of every training run recorded so far
        self._s_torque_cols = sl.columns([f"{j}_torque" for j in r.joint_names])
        self._s_torque = as_slice(self._s_torque_cols)
        nu = len(r.joint_names)
        self.command = np.zeros((n, 3))
        self._ep_track_err = np.zeros(n)
        self._air_time = np.zeros((n, len(r.feet)))
        self._last_contact = np.zeros((n, len(r.feet)), bool)
        self._push_timer = np.full(n, np.inf)
        self._noisy = RobotState(joint_pos=np.zeros((n, nu)), joint_vel=np.zeros((n, nu)),
                                 base_quat=np.zeros((n, 4)), base_ang_vel=np.zeros((n, 3)),
                                 base_lin_acc=np.zeros((n, 3)), timestamp=np.zeros(n))
        self._default = np.asarray(self.contract.default_joint_pos)

    def reset_batch(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        self.command[idx] = self.sample_commands(rng, len(idx))

    def init_world(self, i: int, rng: np.random.Generator, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        qpos, qvel = self.initial_state(rng)
        mujoco.mj_resetData(model, data)
        data.qpos[:], data.qvel[:] = qpos, qvel
        data.ctrl[:] = self._default

    def finish_reset(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        self._ep_track_err[idx] = 0.0
        self._air_time[idx] = 0.0
        self._last_contact[idx] = False
        self._push_timer[idx] = next_push_delay(self.cfg.randomization, rng, len(idx))

    def perturb(self, rng: np.random.Generator) -> None:
        """Pushes: a horizontal base velocity kick to every world whose push timer ran out."""
        self._push_timer -= self.policy_dt
        due = self._push_timer <= 0.0
        if due.any():
            idx = np.flatnonzero(due)
            qv = 1 + self.model.nq
            self._b.state[idx, qv:qv + 2] += push_velocity(self.cfg.randomization, rng, len(idx))
            self._push_timer[idx] = next_push_delay(self.cfg.randomization, rng, len(idx))

    def sense(self) -> RobotState:
        """The simulator's state as views into the core's buffers; also refreshes the projected gravity of the base
        that rewards and terminations read."""
        return self._state_of(np.asarray)

    def _state_of(self, c: Callable[[Any], Any]) -> RobotState:
        b = self._b
        qpos, qvel = self._qpos_v, self._qvel_v
        quat = qpos[:, 3:7]
        rotate_inverse_and_gravity(quat, qvel[:, 0:3], self._lin_vel, self._gravity)
        return RobotState(joint_pos=c(b.state[:, self._jq]), joint_vel=c(b.state[:, self._jv]),
                          base_quat=c(quat), base_ang_vel=c(qvel[:, 3:6]),
                          base_lin_acc=c(b.sens[:, -1, self._s_acc]),
                          timestamp=b.ep_step * self.policy_dt, base_lin_vel=c(self._lin_vel),
                          base_pos=c(qpos[:, 0:3]), contacts=b.sens[:, -1, self._s_feet] > 1.0,
                          joint_effort=c(b.sens[:, -1, self._s_torque]))

    def true_state(self, sensed: RobotState) -> RobotState:
        return self._state_of(np.copy)

    def measure(self, sensed: RobotState, rng: np.random.Generator) -> RobotState:
        """Sensor model: per-episode bias plus white noise on the measured fields (what the policy sees)."""
        p, s, true = self._b.params, self._noisy, sensed
        n, nj = true.joint_pos.shape
        # one draw for all four fields: the same stream as four draws in this order
        z = rng.standard_normal(n * (2 * nj + 7))
        sensor_noise(true.joint_pos, true.joint_vel, true.base_ang_vel, true.base_quat, p["joint_pos_bias"],
                     p["joint_pos_noise"], p["joint_vel_noise"], p["ang_vel_bias"], p["ang_vel_noise"],
                     p["quat_noise"], z, s.joint_pos, s.joint_vel, s.base_ang_vel, s.base_quat)
        s.base_lin_acc[:] = true.base_lin_acc
        s.timestamp = true.timestamp
        s.contacts = true.contacts
        s.base_pos = true.base_pos  # state estimate of the base height for the safety chain's height shield
        return s

    def view(self, sensed: RobotState) -> StepView:
        """What the reward terms see (reads the gravity `sense` computed; advances the swing-time bookkeeping)."""
        b, true = self._b, sensed
        feet = b.sens[:, -1, self._s_feet]
        air, first = np.empty_like(self._air_time), np.empty_like(self._last_contact)
        swing_times(feet, self._last_contact, self._air_time, self.policy_dt, air, first)
        assert true.base_lin_vel is not None  # the simulator always knows the base velocity
        return StepView(base_lin_vel=true.base_lin_vel, base_ang_vel=true.base_ang_vel, base_quat=true.base_quat,
                        gravity=self._gravity,
                        base_height=self._qpos_v[:, 2], joint_pos=true.joint_pos, joint_vel=true.joint_vel,
                        torques=b.sens[:, :, self._s_torque_cols], action=b.applied,
                        last_action=b.last_action, policy_action=b.action, intervened=b.intervened,
                        command=self.command,
                        feet_touch=feet, thigh_touch=b.sens[:, -1, self._s_thigh],
                        calf_touch=b.sens[:, -1, self._s_calf], trunk_touch=b.sens[:, -1, self._s_trunk],
                        air_time=air, first_contact=first)

    def track(self, view: StepView) -> None:
        err = np.square(self.command[:, :2] - view.base_lin_vel[:, :2]).sum(axis=1)
        self._ep_track_err += np.sqrt(err)

    def episode_metrics(self, view: StepView, i: int, terminated: bool) -> dict[str, Any]:
        length = int(self._b.ep_step[i])
        return {"tracking_error": float(self._ep_track_err[i] / max(length, 1)), "success": not terminated,
                "command": self.command[i].tolist()}

    def render_scene(self, env: int, data: mujoco.MjData) -> mujoco.MjvCamera:
        """A camera tracking the base."""
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        cam.trackbodyid = self.param_ids.base_body
        cam.distance, cam.azimuth, cam.elevation = 1.5, 135.0, -20.0
        return cam

    # ---- rewards and terminations ------------------------------------------------------------------------------
    def _r_joint_limits(self, s: StepView, c: RewardConfig) -> np.ndarray:
        """Distance beyond the soft joint limits, summed over joints (radians outside)."""
        out = np.maximum(self._soft_lo - s.joint_pos, 0) + np.maximum(s.joint_pos - self._soft_hi, 0)  # = clip
        return out.sum(axis=1)

    def logged_view(self, steps: LoggedSteps) -> tuple[StepView, frozenset[str]]:
        """The reward view of T logged transitions (replay) and the inputs the log provided: base height and
        velocity from a ground-truth pose (base_pose), torques from the efforts (joint_effort), air time and
        touchdowns from the feet's contact forces with the environment's bookkeeping from the segment's start
        (feet_contacts), thigh and calf forces (leg_contacts). What the log lacks is zero in the view."""
        t, robot = steps.applied.shape[0], self.robot

        def touch(bodies: tuple[str, ...]) -> np.ndarray | None:
            if steps.touch is None or any(b not in steps.touch for b in bodies):
                return None
            return np.stack([steps.touch[b] for b in bodies], axis=1) if bodies else np.zeros((t + 1, 0))

        feet, thigh, calf = touch(tuple(robot.feet)), touch(tuple(robot.thighs)), touch(tuple(robot.calves))
        nf, n = len(robot.feet), steps.joint_pos.shape[1]
        air, first = np.zeros((t, nf)), np.zeros((t, nf), bool)
        if feet is not None:
            air_time, last = np.zeros((1, nf)), np.zeros((1, nf), bool)
            for k in range(t):
                swing_times(feet[k + 1:k + 2], last, air_time, self.policy_dt, air[k:k + 1], first[k:k + 1])
        pose = steps.base_pos is not None and steps.base_lin_vel is not None
        inputs = {name for name, ok in (("base_pose", pose), ("joint_effort", steps.joint_effort is not None),
                                        ("feet_contacts", feet is not None),
                                        ("leg_contacts", thigh is not None and calf is not None)) if ok}
        view = StepView(
            base_lin_vel=steps.base_lin_vel[1:] if steps.base_lin_vel is not None else np.zeros((t, 3)),
            base_ang_vel=steps.base_ang_vel, base_quat=steps.base_quat,
            base_height=steps.base_pos[1:, 2] if steps.base_pos is not None else np.zeros(t),
            joint_pos=steps.joint_pos, joint_vel=steps.joint_vel,
            torques=steps.joint_effort[:, None, :] if steps.joint_effort is not None else np.zeros((t, 1, n)),
            action=steps.applied, last_action=steps.last_action, policy_action=steps.policy_action,
            intervened=steps.intervened, command=steps.command,
            feet_touch=feet[1:] if feet is not None else np.zeros((t, nf)),
            thigh_touch=thigh[1:] if thigh is not None else np.zeros((t, len(robot.thighs))),
            calf_touch=calf[1:] if calf is not None else np.zeros((t, len(robot.calves))),
            trunk_touch=np.zeros(t), air_time=air, first_contact=first)
        return view, frozenset(inputs)

    def rewards(self, s: StepView) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Total reward and the weighted terms (each already multiplied by weight and policy period); the total is
        clipped at zero with `rewards.only_positive`."""
        total, terms = weighted_sum(self.reward_terms, self.reward_weights, s, self.reward_config, self.policy_dt,
                                    s.joint_pos.shape[0])
        if self.cfg.rewards.only_positive:
            np.clip(total, 0.0, None, out=total)
        return total, terms

    def terminated(self, s: StepView) -> np.ndarray:
        t = self.cfg.termination
        fell = _gravity(s)[:, 2] > self._tilt_limit
        for g in t.contacts:
            if g == "trunk":
                fell |= s.trunk_touch > t.contact_force
            else:
                fell |= ((s.thigh_touch if g == "thigh" else s.calf_touch) > t.contact_force).any(axis=1)
        return fell
