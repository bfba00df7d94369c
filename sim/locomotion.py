"""Velocity tracking for legged robots: config sections, reward terms as named pure functions, terminations, and
the task object the vectorized environment drives. A robot's task file (e.g. robots/a1/walk.py) only chooses
defaults and names the robot's bodies and sensors.

Reward weights are per second: the environment multiplies each term by its weight and the policy period, as
legged_gym does, so weights do not change when the control rate does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import mujoco
import numpy as np

from robot_rl.config import to_dict
from robot_rl.contract import ActionSpec, ObsTerm, PolicyContract
from robot_rl.errors import ConfigError
from robot_rl.sim.randomization import RandomizationConfig
from robot_rl.state import projected_gravity


# ---- config sections -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ControlConfig:
    """Rates and the PD law shared with the robot."""

    physics_dt: float = 0.005
    """Physics step [s] (200 Hz, legged_gym's rate)."""
    policy_dt: float = 0.02
    """Policy period [s] (50 Hz); must be a multiple of physics_dt."""
    kp: float = 20.0
    """Joint stiffness [N m/rad] (legged_gym A1)."""
    kd: float = 0.5
    """Joint damping gain [N m s/rad]."""
    action_scale: float = 0.25
    """q_des = default + action_scale * clip(action, -action_clip, action_clip)."""
    action_clip: float = 1.0
    """Bound on the policy action (in action units; the safety chain bounds the targets further)."""

    def __post_init__(self) -> None:
        if self.physics_dt <= 0 or self.policy_dt <= 0:
            raise ConfigError("control: physics_dt and policy_dt must be positive")
        ratio = self.policy_dt / self.physics_dt
        if abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(f"control.policy_dt {self.policy_dt} is not a multiple of physics_dt {self.physics_dt}")
        if self.kp < 0 or self.kd < 0 or self.action_scale <= 0 or self.action_clip <= 0:
            raise ConfigError("control: kp, kd must be >= 0, action_scale and action_clip > 0")

    @property
    def decimation(self) -> int:
        return int(round(self.policy_dt / self.physics_dt))


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
    0.15-0.25 s, so 0.5 s made every early step a penalty (the term stayed net negative through a 17-minute run and
    the policy kept its feet planted)."""
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
class LocomotionConfig:
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
    randomization: RandomizationConfig = field(default_factory=RandomizationConfig)
    """Domain randomization ranges and timing."""
    safety: LocomotionSafetyConfig = field(default_factory=LocomotionSafetyConfig)
    """Safety chain written into the contract (used in training when the env is built with safety=True)."""
    ang_vel_obs_scale: float = 0.25
    """Observation scale of the gyro term (legged_gym)."""
    joint_vel_obs_scale: float = 0.05
    """Observation scale of the joint velocity term."""
    num_threads: int = 1
    """Physics threads (mujoco.rollout); each steps a share of the environments with the GIL released."""

    def __post_init__(self) -> None:
        if self.num_threads < 1:
            raise ConfigError("num_threads must be >= 1")


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


INTERVENED_TOL = 1e-6
"""Action units (0.25 micro-radian at the A1's scale): below any correction, above the float round trip of
decoding the certified targets back into actions."""


def corrected(action: np.ndarray, policy_action: np.ndarray) -> np.ndarray:
    """(N,) 1.0 where the safety chain changed the policy's (clipped) action, else 0.0."""
    return (np.abs(action - policy_action).max(axis=1) > INTERVENED_TOL).astype(float)


def r_safety_intervened(s: StepView, c: RewardConfig) -> np.ndarray:
    return corrected(s.action, s.policy_action)


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


class LocomotionTask:
    """A velocity-tracking task for one legged robot: model, contract, commands, rewards, terminations."""

    def __init__(self, name: str, robot: LeggedRobot, cfg: LocomotionConfig) -> None:
        self.name = name
        self.robot = robot
        self.cfg = cfg
        self.model = robot.build_model(cfg.control)
        self.decimation = cfg.control.decimation
        self.max_episode_steps = int(round(cfg.termination.episode_length_s / cfg.control.policy_dt))
        jids = [self.model.joint(j).id for j in robot.joint_names]
        lo, hi = self.model.jnt_range[jids, 0].copy(), self.model.jnt_range[jids, 1].copy()
        mid, half = (lo + hi) / 2, (hi - lo) / 2 * cfg.rewards.soft_joint_limit
        self.joint_lower, self.joint_upper = lo, hi
        self._soft_lo, self._soft_hi = mid - half, mid + half
        self.weights = {k: getattr(cfg.rewards, k) for k in [*REWARD_TERMS, "joint_limits"]}
        self._active_terms = [(k, fn, self.weights[k]) for k, fn in REWARD_TERMS.items() if self.weights[k] != 0.0]
        self.contract = self._build_contract()
        self._tilt_limit = -np.cos(cfg.termination.max_tilt)
        """Projected gravity's z above this: tilted past max_tilt."""

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
            robot=r.name,
            joint_names=list(r.joint_names),
            default_joint_pos=r.default_joint_pos.tolist(),
            joint_pos_lower=self.joint_lower.tolist(),
            joint_pos_upper=self.joint_upper.tolist(),
            joint_vel_limit=r.velocity_limit.tolist(),
            torque_limit=r.torque_limit.tolist(),
            kp=[c.kp] * n,
            kd=[c.kd] * n,
            policy_rate_hz=1.0 / c.policy_dt,
            physics_rate_hz=1.0 / c.physics_dt,
            action=ActionSpec(type="joint_position", scale=c.action_scale, clip=c.action_clip),
            obs_terms=terms,
            command_names=["vx", "vy", "yaw_rate"],
            command_ranges=[(r[0], r[1]) for r in (cmd.vx, cmd.vy, cmd.yaw_rate)],
            safety=self.cfg.safety.entries(self.joint_inertia().round(6).tolist()),
            provenance={"task": self.name, "backend": f"mujoco {mujoco.__version__}", "model": r.source,
                        "config": to_dict(self.cfg), "randomization": to_dict(self.cfg.randomization)},
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

    # ---- rewards and terminations ------------------------------------------------------------------------------
    def rewards(self, s: StepView, policy_dt: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Total reward and the weighted terms (each already multiplied by weight and policy period)."""
        terms: dict[str, np.ndarray] = {}
        total = np.zeros(s.joint_pos.shape[0])
        cfg = self.cfg.rewards
        for name, fn, w in self._active_terms:
            terms[name] = term = fn(s, cfg) * (w * policy_dt)
            total += term
        w = self.weights["joint_limits"]
        if w != 0.0:
            out = np.maximum(self._soft_lo - s.joint_pos, 0) + np.maximum(s.joint_pos - self._soft_hi, 0)  # = clip
            terms["joint_limits"] = term = out.sum(axis=1) * (w * policy_dt)
            total += term
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
