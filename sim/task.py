"""What a task family plugs into the environment core (robot_rl.sim.env.VecEnv): the `Task` protocol, the `Batch` of
buffers the core shares with its task, and the control section every family's config starts from.

The core owns what every task shares (model copies, physics buffers, the control step, latency, auto-reset, episode
bookkeeping, `info`); a task owns what makes it that task: model and contract, the reset distribution, how to read
its quantities and its RobotState from the physics state, the observation's sensor model, reward terms with
weights, terminations and episode metrics. Per-world task data (commands, goals, swing times) lives in the task's
own arrays, allocated by `allocate`, indexed by world; every method takes what it needs as arguments.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import mujoco
import numpy as np

from robot_rl.bundle import TASK_CONFIG_KEY
from robot_rl.config import to_dict
from robot_rl.contract import PolicyContract
from robot_rl.control_step import ActionCodec
from robot_rl.errors import ConfigError
from robot_rl.sim.randomization import EpisodeParams, ModelIds, RandomizationConfig
from robot_rl.state import RobotState


@dataclass(frozen=True)
class ControlRates:
    """Physics and policy rates, the part of the control section every task family shares."""

    physics_dt: float = 0.005
    """Physics step [s] (200 Hz)."""
    policy_dt: float = 0.02
    """Policy period [s]; must be a multiple of physics_dt."""

    def __post_init__(self) -> None:
        if self.physics_dt <= 0 or self.policy_dt <= 0:
            raise ConfigError("control: physics_dt and policy_dt must be positive")
        ratio = self.policy_dt / self.physics_dt
        if abs(ratio - round(ratio)) > 1e-6:
            raise ConfigError(f"control.policy_dt {self.policy_dt} is not a multiple of physics_dt {self.physics_dt}")

    @property
    def decimation(self) -> int:
        """Physics steps per policy step."""
        return int(round(self.policy_dt / self.physics_dt))


@dataclass(frozen=True)
class TaskConfig:
    """What every task family's config has besides its own sections."""

    num_threads: int = 1
    """Physics threads the engine may use (mujoco.rollout steps a share of the worlds per thread, GIL released)."""

    def __post_init__(self) -> None:
        if self.num_threads < 1:
            raise ConfigError("num_threads must be >= 1")


class RobotDescription(Protocol):
    """The fields of a robot description (LeggedRobot, ArmRobot) that every contract states."""

    name: str
    joint_names: list[str]
    default_joint_pos: np.ndarray
    velocity_limit: np.ndarray
    torque_limit: np.ndarray
    source: str


def contract_basics(task: str, robot: RobotDescription, lower: np.ndarray, upper: np.ndarray, rates: ControlRates,
                    cfg: Any) -> dict[str, Any]:
    """The PolicyContract fields every task writes the same way: robot, joints, limits, rates, provenance (task,
    engine version, model source, resolved config and randomization ranges)."""
    return {"robot": robot.name, "joint_names": list(robot.joint_names),
            "default_joint_pos": robot.default_joint_pos.tolist(), "joint_pos_lower": lower.tolist(),
            "joint_pos_upper": upper.tolist(), "joint_vel_limit": robot.velocity_limit.tolist(),
            "torque_limit": robot.torque_limit.tolist(), "policy_rate_hz": 1.0 / rates.policy_dt,
            "physics_rate_hz": 1.0 / rates.physics_dt,
            "provenance": {"task": task, "backend": f"mujoco {mujoco.__version__}", "model": robot.source,
                           TASK_CONFIG_KEY: to_dict(cfg), "randomization": to_dict(cfg.randomization)}}


class TaskBase:
    """What every task's constructor sets the same way from its robot and config (the attributes of `Task` that
    are not task-specific): the compiled model, rates, episode length, joint range, randomization, URDF."""

    def __init__(self, name: str, robot: Any, cfg: Any) -> None:
        self.name = name
        self.robot = robot
        self.cfg = cfg
        self.model = m = robot.build_model(cfg.control)
        self.decimation: int = cfg.control.decimation
        self.policy_dt: float = cfg.control.policy_dt
        self.num_threads: int = cfg.num_threads
        self.urdf: str = robot.urdf
        self.randomization: RandomizationConfig = cfg.randomization
        self.max_episode_steps = int(round(cfg.termination.episode_length_s / cfg.control.policy_dt))
        jids = [m.joint(j).id for j in robot.joint_names]
        self.joint_lower: np.ndarray = m.jnt_range[jids, 0].copy()
        self.joint_upper: np.ndarray = m.jnt_range[jids, 1].copy()


@dataclass
class LoggedSteps:
    """T logged transitions of one segment, as replay reads them from a robot's log: what each task builds its
    reward view from (`Task.logged_view`). Arrays are per transition, taken after its action unless noted."""

    observations: np.ndarray
    """(T, obs_dim) the policy's observation after each action."""
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    base_quat: np.ndarray
    base_ang_vel: np.ndarray
    applied: np.ndarray
    """(T, act_dim) applied action (after the safety chain)."""
    last_action: np.ndarray
    policy_action: np.ndarray
    """(T, act_dim) the policy's action, clipped to the contract's range."""
    intervened: np.ndarray
    command: np.ndarray
    """(T, 3) the command each action answered (zero-padded)."""
    joint_effort: np.ndarray | None
    """(T, n) measured joint torques, or None when the robot reported none."""
    base_pos: np.ndarray | None
    """(T+1, 3) base position at every tick of the segment (a ground-truth pose topic), or None."""
    base_lin_vel: np.ndarray | None
    """(T+1, 3) base-frame linear velocity at every tick, or None."""
    touch: dict[str, np.ndarray] | None
    """Body name -> (T+1,) contact force [N] at every tick (a contacts topic), or None."""


@dataclass
class Batch:
    """The core's buffers a task reads (and, where a method says so, writes): allocated once, written in place."""

    num_envs: int
    policy_dt: float
    nominal: mujoco.MjModel
    models: list[mujoco.MjModel]
    """Each world's own (randomized) model."""
    state: np.ndarray
    """(N, nstate) full-physics state (mjSTATE_FULLPHYSICS: time, qpos, qvel, ...) after the last policy step."""
    sens: np.ndarray
    """(N, decimation, nsensordata) sensor data of every physics step of the last policy step."""
    ep_step: np.ndarray
    """(N,) policy steps into the current episode."""
    params: EpisodeParams
    """Current per-world randomization values."""
    action: np.ndarray
    """(N, act_dim) the policy's clipped action of the last step (the control step's buffer, bound once the task's
    codec exists: read it in step-time methods, not in `allocate`)."""
    applied: np.ndarray
    """(N, act_dim) the applied action (after the safety chain) of the last step (bound as `action`)."""
    intervened: np.ndarray
    """(N,) bool: rows whose targets the safety chain changed in the last step (the control step's flag, bound as
    `action`)."""
    last_action: np.ndarray
    """(N, act_dim) the applied action of the step before (zero after a reset)."""


S = TypeVar("S")
V = TypeVar("V")


class Task(Protocol[S, V]):
    """A task family's part of a batched environment. `S` is what `sense` reads from the physics state (e.g. the true
    RobotState), `V` what reward terms and terminations see after a policy step."""

    name: str
    cfg: Any
    """The resolved task config (frozen dataclass), saved beside every run."""
    model: mujoco.MjModel
    """The compiled nominal model (a `home` keyframe; ids are looked up by name)."""
    contract: PolicyContract
    decimation: int
    policy_dt: float
    max_episode_steps: int
    num_threads: int
    """Physics threads the engine may use."""
    urdf: str
    """The URDF the model is built from (engines other than MuJoCo load it)."""
    randomization: RandomizationConfig
    param_ids: ModelIds
    """Ids the randomization writes into (looked up by name in `model`)."""
    reward_terms: Mapping[str, Callable[[V, Any], np.ndarray]]
    """Named reward terms (robot_rl.rewards.weighted_sum), in summation order."""
    reward_weights: Mapping[str, float]
    """Weight per second of each reward term."""
    reward_config: Any
    """The `cfg` argument of the reward terms (shape parameters)."""
    command: np.ndarray
    """(N, command_dim) current commands the observation sees (N, 0 when the task has none); valid after allocate."""
    fall_tilt: float
    """A logged segment ends as fallen beyond this base tilt [rad] (pi: the task never falls)."""
    only_positive: bool
    """The total reward is clipped at zero."""

    def allocate(self, batch: Batch, rng: np.random.Generator) -> None:
        """Allocate per-world task buffers for `batch.num_envs` worlds; keep `batch` to read the physics state."""
        ...

    def codec(self) -> ActionCodec:
        """Action semantics (robot_rl.control_step): decode actions to joint targets, encode the applied action."""
        ...

    def reset_batch(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        """Per-episode draws for the worlds `idx` made before their initial states (commands)."""
        ...

    def init_world(self, i: int, rng: np.random.Generator, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        """Write world i's initial state into `data` (reset it first), with its initial joint targets in data.ctrl."""
        ...

    def finish_reset(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        """Reset per-episode task bookkeeping of `idx` after their initial states exist (and draw interval timers)."""
        ...

    def perturb(self, rng: np.random.Generator) -> None:
        """Interval events before this step's physics (pushes), written into batch.state."""
        ...

    def sense(self) -> S:
        """Task quantities of the current physics state (no episode bookkeeping changes; call again freely); `view`,
        `measure` and `true_state` take what it returns."""
        ...

    def view(self, sensed: S) -> V:
        """What reward terms and terminations see after a policy step (updates per-step bookkeeping: once a step)."""
        ...

    def rewards(self, view: V) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """(total, weighted terms) of the step: the weighted sum of `reward_terms`, plus any shaping of the total."""
        ...

    def logged_view(self, steps: LoggedSteps) -> tuple[V, frozenset[str]]:
        """The reward view of logged transitions (replay) and the inputs beyond the ticks that the log provided
        for them (robot_rl.replay.INPUTS names: base_pose, joint_effort, feet_contacts, leg_contacts)."""
        ...

    def terminated(self, view: V) -> np.ndarray:
        """(N,) bool: the episode failed."""
        ...

    def track(self, view: V) -> None:
        """Accumulate per-episode metrics after a step."""
        ...

    def episode_metrics(self, view: V, i: int, terminated: bool) -> dict[str, Any]:
        """Task metrics of world i's episode that ended on this step (success, distances, tracking error)."""
        ...

    def measure(self, sensed: S, rng: np.random.Generator) -> RobotState:
        """The sensor model: the state the policy and the safety chain see (noisy), in a buffer reused every call."""
        ...

    def true_state(self, sensed: S) -> RobotState:
        """The noise-free batched state, copied."""
        ...

    def render_scene(self, env: int, data: mujoco.MjData) -> mujoco.MjvCamera:
        """Prepare `data` (holding world `env`'s state) for rendering and return the camera."""
        ...
