"""Manipulation tasks for a fixed-base arm with a gripper: reach, push and pick-and-place.

Config sections, reward terms (named pure functions of a `ManipView`, weighted by robot_rl.rewards.weighted_sum like
the locomotion terms) and randomization terms; the task classes the environment core drives are in
robot_rl.sim.arm_task. A robot folder (e.g. robots/panda) provides an `ArmRobot` and one file per task choosing the
defaults.

Task quantities reach the policy through `RobotState.extras` and `extra.<key>` observation terms: `ee_pos`,
`goal_pos`, `ee_to_goal` (reach); `object_pos`, `ee_to_object`, `object_to_goal`, `object_vel` (push, pick-and-place).
All positions are in the arm's base frame [m].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar, Literal, Protocol

import mujoco
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.sim.mjmodel import add_pd_actuators
from robot_rl.sim.randomization import RandomizationConfig, TermSpec, Uniform
from robot_rl.sim.task import ControlRates, TaskConfig

OBJECT = "object"
"""Scene names every arm model provides: the object (free body, joint and geom of this name), the goal marker
(mocap body) and the table (geom)."""
GOAL = "goal"
TABLE = "table"
EE_SITE = "ee"
"""Site at the grasp point of every arm model."""
CUBE_HALF = 0.02
"""Nominal half edge of the cube [m]."""
CUBE_MASS = 0.1
"""Nominal mass of the cube [kg]."""
TABLE_HALF = (0.55, 0.6, 0.025)
TABLE_POS = (0.45, 0.0, -0.025)
"""Table top at z = 0 under the arm's base."""
ActionType = Literal["joint_position_delta", "ee_delta"]
GripperMode = Literal["continuous", "binary"]


# ---- config sections -------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArmControlConfig(ControlRates):
    """Rates, action space and the end-effector controller (200 Hz physics, 20 Hz policy: robosuite's rate)."""

    policy_dt: float = 0.05
    """Policy period [s] (20 Hz); a multiple of physics_dt."""
    action: ActionType = "ee_delta"
    """joint_position_delta: q_des = q + scale * a (every joint, gripper included); ee_delta: end-effector
    displacement scale * a[:3] through controllers.osc, gripper opening a[3] in [-1 closed, 1 open]."""
    joint_delta_scale: float = 0.05
    """Largest joint-target step per policy step [rad] (joint_position_delta)."""
    ee_delta_scale: float = 0.03
    """Largest end-effector displacement per policy step [m] (ee_delta)."""
    ik_damping: float = 0.05
    """Damped-least-squares damping of the end-effector controller [m]."""
    orientation_gain: float = 0.5
    """Fraction of the hand's orientation error (to pointing down) corrected per policy step (ee_delta)."""
    gripper: GripperMode = "continuous"
    """ee_delta gripper command a[3]: continuous maps [-1, 1] to the finger range; binary closes fully for a[3] < 0
    and opens fully otherwise (controllers.osc.EndEffectorController.gripper_binary)."""
    kp_scale: float = 1.0
    """Scale on the robot's nominal joint stiffness."""

    def __post_init__(self) -> None:
        super().__post_init__()
        for name in ("joint_delta_scale", "ee_delta_scale", "ik_damping", "kp_scale"):
            if getattr(self, name) <= 0:
                raise ConfigError(f"control.{name} must be positive")
        if not 0.0 <= self.orientation_gain <= 1.0:
            raise ConfigError("control.orientation_gain must be in [0, 1]")


def _box(name: str, lo: tuple[float, float, float], hi: tuple[float, float, float]) -> None:
    if any(a > b for a, b in zip(lo, hi)):
        raise ConfigError(f"{name}: low {lo} exceeds high {hi}")


@dataclass(frozen=True)
class ArmInitConfig:
    """Initial-state distribution: arm pose, object and goal positions (base frame, uniform in boxes)."""

    arm_pose: tuple[float, ...] = ()
    """Initial arm joint positions [rad] (empty: the robot's home pose, the contract default)."""
    joint_noise: float = 0.05
    """Uniform offset on every arm joint from the initial pose [rad]."""
    object_low: tuple[float, float] = (0.45, -0.12)
    """Lower corner of the object's initial (x, y) [m]."""
    object_high: tuple[float, float] = (0.60, 0.12)
    """Upper corner of the object's initial (x, y) [m]."""
    goal_low: tuple[float, float, float] = (0.35, -0.25, 0.10)
    """Lower corner of the goal (reach, pick-and-place: absolute; push: z ignored, goal on the table)."""
    goal_high: tuple[float, float, float] = (0.65, 0.25, 0.45)
    """Upper corner of the goal."""
    goal_min_distance: float = 0.0
    """Push / pick-and-place: the goal is redrawn (up to 10 times) until this far from the object [m]."""
    held_fraction: float = 0.0
    """Pick-and-place training curriculum: this fraction of episodes starts with the hand down at the cube, the cube
    between the (just open) fingers, instead of at `arm_pose` (a standard reset trick; the learner meets the
    rewarding grasped states early). 0 is the task itself: evaluate with 0 (panda_pick_place TRAIN_DEFAULTS
    turn it on for training only)."""
    grasped_fraction: float = 0.0
    """Pick-and-place training curriculum: this fraction of episodes starts with the cube already squeezed between
    the closed fingers and lifted by `grasped_lift` above the table (the gripper target closed from the first
    physics step), so the first states already carry lift and carry reward. Disjoint from held_fraction."""
    grasped_lift: tuple[float, float] = (0.02, 0.03)
    """Range of the cube's height above its resting height in a grasped start [m] (uniform)."""

    def __post_init__(self) -> None:
        if self.joint_noise < 0 or self.goal_min_distance < 0:
            raise ConfigError("init: joint_noise and goal_min_distance must be >= 0")
        if not (0.0 <= self.held_fraction <= 1.0 and 0.0 <= self.grasped_fraction <= 1.0
                and self.held_fraction + self.grasped_fraction <= 1.0):
            raise ConfigError(f"init.held_fraction ({self.held_fraction}) and init.grasped_fraction "
                              f"({self.grasped_fraction}) must be in [0, 1] and sum to at most 1")
        if not 0.0 <= self.grasped_lift[0] <= self.grasped_lift[1]:
            raise ConfigError(f"init.grasped_lift must be an increasing pair of heights >= 0, got {self.grasped_lift}")
        _box("init.object", (*self.object_low, 0.0), (*self.object_high, 0.0))
        _box("init.goal", self.goal_low, self.goal_high)


@dataclass(frozen=True)
class ArmRewardConfig:
    """Weights (per second) of the named terms; 0 disables a term."""

    reach: float = 1.0
    """1 - tanh(|ee - target| / distance_scale); target is the goal (reach) or the object (push, pick)."""
    push_pose: float = 0.0
    """1 - tanh(|ee - p| / distance_scale), p just behind the object on the side away from the goal (push)."""
    object_to_goal: float = 0.0
    """1 - tanh(|object - goal| / goal_distance_scale) (pick-and-place: only while the object is lifted)."""
    object_to_goal_fine: float = 0.0
    """1 - tanh(|object - goal| / fine_distance_scale), only while lifted: a sharp kernel for the last centimetres
    (IsaacLab's lift task pairs a 0.3 m and a 0.05 m kernel)."""
    lift: float = 0.0
    """1 when the object is more than lift_height above its resting height."""
    lift_progress: float = 0.0
    """Object height above rest as a fraction of the goal's height above rest, in [0, 1] (pick-and-place): a
    gradient from the first millimetre of lift up to the goal height, where `lift` only counts past lift_height."""
    grasp: float = 0.0
    """1 while the grasp point is within grasp_radius of the object's centre and the gripper command closes firmly
    (last action component < grasp_command): the step between reaching and lifting (pick-and-place)."""
    success: float = 1.0
    """1 while the success criterion holds."""
    action_rate: float = -0.01
    """Squared change of the applied action between policy steps."""
    joint_vel: float = -0.001
    """Sum of squared joint velocities."""
    safety_intervention: float = -0.05
    """Squared correction of the action by the safety chain (the gripper's 0.2 m/s limit corrects fast gripper
    commands often, so this stays small)."""
    safety_intervened: float = 0.0
    """1 on every policy step on which the safety chain changed the action (interventions per tick, as deployment
    counts them); for fine-tuning a deployed policy to intervene less (docs/replay.md)."""
    distance_scale: float = 0.1
    """Width of the reach / push_pose tanh kernels [m]."""
    goal_distance_scale: float = 0.1
    """Width of the object_to_goal kernel [m]."""
    fine_distance_scale: float = 0.05
    """Width of the object_to_goal_fine kernel [m]."""
    lift_height: float = 0.03
    """Height above rest that counts as lifted [m]."""
    grasp_radius: float = 0.02
    """Grasp-point to object-centre distance that counts as the object between the fingers [m]."""
    grasp_command: float = -0.5
    """Gripper command below which the grasp term counts the gripper as closing firmly (continuous gripper: just
    below 0 squeezes too little to hold the cube; a binary gripper closes fully below 0)."""
    success_threshold: float = 0.05
    """Distance (ee-goal for reach, object-goal otherwise) below which the task is solved [m]."""

    def __post_init__(self) -> None:
        if min(self.distance_scale, self.goal_distance_scale, self.fine_distance_scale, self.success_threshold,
               self.lift_height, self.grasp_radius) <= 0:
            raise ConfigError("rewards: distance scales, success_threshold, lift_height and grasp_radius must be "
                              "positive")


@dataclass(frozen=True)
class ArmRandomizationConfig(RandomizationConfig):
    """Randomization of the arm, the object and the sensors (timing as in sim.randomization); the PD, latency and
    joint noise terms are RandomizationConfig's (ManipulationConfig sets the arm's ranges for latency and noise)."""

    TERMS: ClassVar[dict[str, TermSpec]] = {
        **RandomizationConfig.TERMS, "object_mass": TermSpec(nominal=1.0), "object_size": TermSpec(nominal=1.0),
        "object_friction": TermSpec(nominal=1.0), "joint_damping": TermSpec(), "object_pos_noise": TermSpec()}
    ORDER: ClassVar[tuple[str, ...]] = (
        "object_mass", "object_size", "object_friction", "joint_damping", "motor_strength", "kp_scale", "kd_scale",
        "latency_steps", "joint_pos_noise", "joint_vel_noise", "object_pos_noise")

    object_mass: Uniform = field(default_factory=lambda: Uniform(0.5, 1.5))
    """Scale on the object's mass (and inertia)."""
    object_size: Uniform = field(default_factory=lambda: Uniform(0.85, 1.15))
    """Scale on the object's edge length."""
    object_friction: Uniform = field(default_factory=lambda: Uniform(0.5, 1.2))
    """Sliding friction coefficient of every object contact."""
    joint_damping: Uniform = field(default_factory=lambda: Uniform(0.0, 0.5))
    """Passive damping added to every arm joint [N m s/rad]."""
    object_pos_noise: Uniform = field(default_factory=lambda: Uniform(0.0, 0.005))
    """Std of white noise on the observed object position [m] (a camera-based pose estimate)."""


def arm_randomization() -> ArmRandomizationConfig:
    """The arms' defaults: latency 0-2 physics steps (0-10 ms), joint noise std up to 0.005 rad (or m, the finger)
    and 0.05 rad/s; every other term at its declared default."""
    return ArmRandomizationConfig(latency_steps=Uniform(0, 2), joint_pos_noise=Uniform(0.0, 0.005),
                                  joint_vel_noise=Uniform(0.0, 0.05))


@dataclass(frozen=True)
class ArmTerminationConfig:
    episode_length_s: float = 3.0
    """Time limit [s] (a truncation)."""
    object_drop_height: float = -0.05
    """Object centre below this height (off the table) ends the episode as a failure [m]."""

    def __post_init__(self) -> None:
        if self.episode_length_s <= 0:
            raise ConfigError("termination.episode_length_s must be positive")


@dataclass(frozen=True)
class ManipulationConfig(TaskConfig):
    """A manipulation task: everything tunable, saved beside every run."""

    robot: str = "panda"
    """Registered arm (robot_rl.sim.registry); pick-and-place needs one with a gripper."""
    control: ArmControlConfig = field(default_factory=ArmControlConfig)
    """Rates, action space, controller."""
    rewards: ArmRewardConfig = field(default_factory=ArmRewardConfig)
    """Reward weights and success threshold."""
    termination: ArmTerminationConfig = field(default_factory=ArmTerminationConfig)
    """Episode end conditions."""
    init: ArmInitConfig = field(default_factory=ArmInitConfig)
    """Reset distribution."""
    randomization: ArmRandomizationConfig = field(default_factory=arm_randomization)
    """Domain randomization (arm_randomization: the arms' latency and noise ranges)."""
    joint_vel_obs_scale: float = 0.1
    """Observation scale of the joint velocity term."""
    safety: bool = False
    """Put the arm CBF (coupled model on the URDF, joint position/velocity limits) into the contract's safety
    chain, so training and deployment run it. Off by default: the coupled model's per-tick QP costs several times
    the environment step and corrects a large share of exploratory actions (docs/manipulation.md)."""


# ---- the arm as the task sees it -------------------------------------------------------------------------------
@dataclass(frozen=True)
class ArmRobot:
    """What a manipulation task needs to know about an arm; its robot folder provides it."""

    name: str
    joint_names: list[str]
    """Contract joints: arm joints, then the gripper joint (one actuated finger; the other is coupled)."""
    arm_joints: int
    """How many of joint_names are arm joints (the rest is the gripper)."""
    default_joint_pos: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    torque_limit: np.ndarray
    velocity_limit: np.ndarray
    ee_site: str
    """Site at the grasp point."""
    build_model: Callable[[ArmControlConfig], mujoco.MjModel]
    """Compiled scene: arm, table, `object` (free body, geom `object`) and `goal` (mocap body), `home` key."""
    mimic_joints: tuple[str, ...] = ()
    """Joints that copy the gripper joint (coupled finger), set with it at reset."""
    urdf: str = ""
    """The URDF the model is built from (the PyBullet backend loads the same file)."""
    source: str = ""

    @property
    def has_gripper(self) -> bool:
        return len(self.joint_names) > self.arm_joints


class ArmModel(Protocol):
    """What an arm's model module (robots/<arm>/model.py) provides to describe the arm."""

    JOINT_NAMES: list[str]
    HOME: np.ndarray
    KP: np.ndarray
    KD: np.ndarray

    def urdf_path(self) -> Path: ...

    def urdf_limits(self, path: Path | None = None) -> tuple[np.ndarray, np.ndarray]: ...

    def build_model(self, physics_dt: float, kp: np.ndarray, kd: np.ndarray) -> mujoco.MjModel: ...


def arm_robot(name: str, model: ArmModel, arm_joints: int, source: str,
              mimic_joints: tuple[str, ...] = ()) -> ArmRobot:
    """The ArmRobot of an arm model module: joints, home pose, gains (scaled by control.kp_scale), URDF limits."""
    effort, velocity = model.urdf_limits()

    def build(control: ArmControlConfig) -> mujoco.MjModel:
        return model.build_model(control.physics_dt, model.KP * control.kp_scale, model.KD)

    return ArmRobot(name=name, joint_names=list(model.JOINT_NAMES), arm_joints=arm_joints,
                    default_joint_pos=model.HOME.copy(), kp=model.KP.copy(), kd=model.KD.copy(),
                    torque_limit=effort, velocity_limit=velocity, ee_site=EE_SITE, mimic_joints=mimic_joints,
                    build_model=build, urdf=str(model.urdf_path()), source=source)


# ---- what reward terms see -------------------------------------------------------------------------------------
@dataclass
class ManipView:
    """Batched quantities after a policy step (views; do not keep them)."""

    ee_pos: np.ndarray
    goal: np.ndarray
    object_pos: np.ndarray
    object_rest_z: np.ndarray
    """(N,) object centre height when resting on the table."""
    joint_vel: np.ndarray
    action: np.ndarray
    last_action: np.ndarray
    policy_action: np.ndarray
    intervened: np.ndarray
    """(N,) bool: the safety chain changed this step's targets (the control step's flag)."""
    target: np.ndarray
    """(N, 3) what the hand reaches for: the goal (reach) or the object."""
    distance: np.ndarray
    """(N,) the distance the success criterion is about: ee-goal (reach) or object-goal."""
    carry_only: bool
    """The object-to-goal terms count only while the object is lifted (pick-and-place)."""


def lifted(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    return s.object_pos[:, 2] > s.object_rest_z + c.lift_height


def r_reach(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    return 1.0 - np.tanh(np.linalg.norm(s.target - s.ee_pos, axis=1) / c.distance_scale)


def r_push_pose(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    away = s.goal[:, :2] - s.object_pos[:, :2]
    away /= np.maximum(np.linalg.norm(away, axis=1, keepdims=True), 1e-6)
    behind = s.object_pos.copy()
    behind[:, :2] -= away * (s.object_rest_z[:, None] + 0.02)
    return 1.0 - np.tanh(np.linalg.norm(behind - s.ee_pos, axis=1) / c.distance_scale)


def _object_to_goal(s: ManipView, c: ArmRewardConfig, scale: float) -> np.ndarray:
    value = 1.0 - np.tanh(np.linalg.norm(s.goal - s.object_pos, axis=1) / scale)
    return value * lifted(s, c) if s.carry_only else value


def r_object_to_goal(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    return _object_to_goal(s, c, c.goal_distance_scale)


def r_object_to_goal_fine(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    return _object_to_goal(s, c, c.fine_distance_scale)


def r_lift(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    return lifted(s, c).astype(np.float64)


def r_lift_progress(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    up = s.object_pos[:, 2] - s.object_rest_z
    need = np.maximum(s.goal[:, 2] - s.object_rest_z, c.lift_height)
    return np.clip(up / need, 0.0, 1.0)


def r_grasp(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    near = np.linalg.norm(s.object_pos - s.ee_pos, axis=1) < c.grasp_radius
    return (near & (s.action[:, -1] < c.grasp_command)).astype(np.float64)


def r_success(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    return (s.distance < c.success_threshold).astype(np.float64)


def r_action_rate(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    return np.sum(np.square(s.action - s.last_action), axis=1)


def r_joint_vel(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    return np.sum(np.square(s.joint_vel), axis=1)


def r_safety_intervention(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    return np.sum(np.square(s.action - s.policy_action), axis=1)


def r_safety_intervened(s: ManipView, c: ArmRewardConfig) -> np.ndarray:
    return s.intervened.astype(float)


REWARD_TERMS: dict[str, Callable[[ManipView, ArmRewardConfig], np.ndarray]] = {
    "reach": r_reach,
    "push_pose": r_push_pose,
    "object_to_goal": r_object_to_goal,
    "object_to_goal_fine": r_object_to_goal_fine,
    "lift": r_lift,
    "lift_progress": r_lift_progress,
    "grasp": r_grasp,
    "success": r_success,
    "action_rate": r_action_rate,
    "joint_vel": r_joint_vel,
    "safety_intervention": r_safety_intervention,
    "safety_intervened": r_safety_intervened,
}
"""Every weighted term named in ArmRewardConfig."""


def add_tabletop(spec: mujoco.MjSpec) -> None:
    """The scene every arm model provides (names OBJECT, GOAL, TABLE): a light, the table with its top at z = 0
    under the arm's base, the cube (free body and geom `object`) and the goal marker (mocap body `goal`)."""
    world = spec.worldbody
    world.add_light(pos=[0.5, 0, 2.0], dir=[0, 0, -1], diffuse=[0.8, 0.8, 0.8], castshadow=False)
    world.add_geom(name=TABLE, type=mujoco.mjtGeom.mjGEOM_BOX, size=list(TABLE_HALF), pos=list(TABLE_POS),
                   rgba=[0.55, 0.45, 0.35, 1], friction=[1.0, 0.005, 0.0001], contype=1, conaffinity=1, condim=3)
    obj = world.add_body(name=OBJECT, pos=[0.5, 0.0, CUBE_HALF])
    obj.add_freejoint(name=OBJECT)
    # priority 1: the object's (randomized) friction decides all of its contacts, like PyBullet's product rule
    # with every other surface at friction 1
    obj.add_geom(name=OBJECT, type=mujoco.mjtGeom.mjGEOM_BOX, size=[CUBE_HALF] * 3, mass=CUBE_MASS,
                 rgba=[0.85, 0.2, 0.2, 1], friction=[1.0, 0.005, 0.0001], priority=1, contype=1, conaffinity=1,
                 condim=3)
    goal = world.add_body(name=GOAL, mocap=True, pos=[0.5, 0.2, 0.2])
    goal.add_geom(name=GOAL, type=mujoco.mjtGeom.mjGEOM_SPHERE, size=[0.02, 0, 0], rgba=[0.2, 0.8, 0.2, 0.5],
                  contype=0, conaffinity=0)


def finish_arm_spec(spec: mujoco.MjSpec, ee_body: str, ee_pos: tuple[float, float, float], joint_names: list[str],
                    kp: np.ndarray, kd: np.ndarray, effort: np.ndarray) -> None:
    """What every arm model ends with: the `ee` site (grasp point) on `ee_body`, the tabletop scene and PD actuators
    (controllers.pd_torque) on `joint_names` with the URDF effort limits."""
    spec.body(ee_body).add_site(name=EE_SITE, pos=list(ee_pos), size=[0.01, 0, 0], rgba=[1, 0, 0, 0.5])
    add_tabletop(spec)
    add_pd_actuators(spec, joint_names, np.asarray(kp, float), np.asarray(kd, float), effort)


def compile_with_home(spec: mujoco.MjSpec, home: dict[str, float], ctrl: np.ndarray) -> mujoco.MjModel:
    """Compile with a `home` keyframe: joints at `home` (name -> position), the cube resting at (0.5, 0), actuator
    targets `ctrl`."""
    model = spec.compile()
    qpos = np.zeros(model.nq)
    for name, value in home.items():
        qpos[model.jnt_qposadr[model.joint(name).id]] = value
    adr = model.jnt_qposadr[model.joint(OBJECT).id]
    qpos[adr:adr + 7] = [0.5, 0.0, CUBE_HALF, 1, 0, 0, 0]
    spec.add_key(name="home", qpos=qpos, ctrl=ctrl)
    return spec.compile()
