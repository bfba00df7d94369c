"""Manipulation tasks for a fixed-base arm: a shared base (`ArmTask`) and one small class per task (`ReachTask`,
`PushTask`, `PickPlaceTask`), driven by the environment core (robot_rl.sim.env.VecEnv).

The base owns what every arm task shares: model, contract, the action codecs (joint deltas through the contract, or
end-effector deltas through controllers.osc with the model's Jacobian), kinematics of the grasp point, the sensor
model (noise on joints and on the object position), the reset of arm, object and goal, reward terms and metrics.
A task class only states what differs: which quantities it observes, where its object and goal start, what the
hand reaches for, when the object-to-goal terms count, and when an episode fails.

Task quantities reach the policy through `RobotState.extras` and `extra.<key>` observation terms. All positions are
in the arm's base frame [m].
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, ClassVar

import mujoco
import numpy as np

from robot_rl.contract import ActionSpec, ObsTerm, PolicyContract
from robot_rl.control_step import ActionCodec, RangedJointDeltaCodec, register_codec
from robot_rl.controllers.osc import EndEffectorController, damped_least_squares, orientation_error
from robot_rl.errors import ConfigError, ContractError
from robot_rl.rewards import weighted_sum
from robot_rl.sim.manipulation import (
    GOAL,
    OBJECT,
    REWARD_TERMS,
    TABLE,
    ArmRobot,
    ManipulationConfig,
    ManipView,
)
from robot_rl.sim.mjmodel import name_ids
from robot_rl.sim.randomization import ModelIds, sample_terms
from robot_rl.sim.task import Batch, LoggedSteps, TaskBase, contract_basics
from robot_rl.state import RobotState


@dataclass
class ArmKinematics:
    """What `ArmTask.sense` reads from the physics state: the task's buffers, refreshed in place every call."""

    ee: np.ndarray
    """(N, 3) grasp-point position (base frame) [m]."""
    rot: np.ndarray
    """(N, 3, 3) hand orientation."""
    jac: np.ndarray
    """(N, 6, arm_joints) grasp-point Jacobian of the arm joints, linear rows first."""

    def fill(self, i: int, model: mujoco.MjModel, data: mujoco.MjData, site: int, cols: np.ndarray,
             jac: np.ndarray) -> None:
        """Row i at `data`'s joint positions: forward kinematics, then the site's position, orientation and the arm
        columns (`cols`) of its Jacobian (`jac`: a (6, nv) scratch)."""
        mujoco.mj_kinematics(model, data)
        mujoco.mj_comPos(model, data)
        mujoco.mj_jacSite(model, data, jac[:3], jac[3:], site)
        self.ee[i] = data.site_xpos[site]
        self.rot[i] = data.site_xmat[site].reshape(3, 3)
        self.jac[i] = jac[:, cols]


# ---- action codecs (robot_rl.control_step.ActionCodec) ---------------------------------------------------------
class EeDeltaCodec:
    """`ee_delta`: end-effector displacement (and gripper opening) through controllers.osc with the Jacobian and
    hand orientation of each world's current kinematics (`jac`, `rot`: arrays the task refreshes in place after
    every physics step); targets clipped to the joint range. Encoding is a first-order estimate kept inside the
    action box: inexact."""

    exact = False

    def __init__(self, osc: EndEffectorController, clip: float, jac: np.ndarray, rot: np.ndarray, lower: np.ndarray,
                 upper: np.ndarray) -> None:
        self.osc, self.clip = osc, clip
        self.jac, self.rot = jac, rot
        self.lower, self.upper = lower, upper

    def decode(self, action: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        out[...] = self.osc.targets(action, state.joint_pos, self.jac, self.rot)
        return np.clip(out, self.lower, self.upper, out=out)

    def encode(self, targets: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        out[...] = np.clip(self.osc.action_of(targets, state.joint_pos, self.jac), -self.clip, self.clip)
        return out


class MeasuredKinematics:
    """Grasp-point kinematics of an arm model at given joint positions, for holders of measured joints only (the
    robot, replay), where no environment refreshes `ArmKinematics` after each physics step."""

    def __init__(self, model: mujoco.MjModel, robot: ArmRobot) -> None:
        self.model = model
        self._data = mujoco.MjData(model)
        mujoco.mj_resetDataKeyframe(model, self._data, model.key("home").id)
        self._qadr = np.array([model.jnt_qposadr[model.joint(j).id] for j in robot.joint_names], np.int64)
        self._mimic = np.array([model.jnt_qposadr[model.joint(j).id] for j in robot.mimic_joints], np.int64)
        self._cols = np.array([model.jnt_dofadr[model.joint(j).id] for j in robot.joint_names[:robot.arm_joints]])
        self._site = model.site(robot.ee_site).id
        self._full_jac = np.zeros((6, model.nv))

    def __call__(self, q: np.ndarray) -> ArmKinematics:
        """Grasp point (N, 3), hand orientation (N, 3, 3) and Jacobian (N, 6, arm_joints) at joints q (N, n)."""
        m, d, jac = self.model, self._data, self._full_jac
        n = q.shape[0]
        out = ArmKinematics(ee=np.zeros((n, 3)), rot=np.zeros((n, 3, 3)), jac=np.zeros((n, 6, len(self._cols))))
        for i, row in enumerate(q):
            d.qpos[self._qadr] = row
            d.qpos[self._mimic] = row[-1]
            out.fill(i, m, d, self._site, self._cols, jac)
        return out


class MeasuredEeDeltaCodec:
    """`ee_delta` where no environment refreshes the kinematics (the robot, replay): the Jacobian and hand
    orientation of the task's own arm model at the measured joint positions of every call, then the same
    controller and joint-range clip as `EeDeltaCodec`. Batched over any leading shape (a robot is shape `()`)."""

    exact = False

    def __init__(self, kinematics: MeasuredKinematics, osc: EndEffectorController, clip: float, lower: np.ndarray,
                 upper: np.ndarray) -> None:
        self.kinematics, self.osc, self.clip = kinematics, osc, clip
        self.lower, self.upper = lower, upper

    def decode(self, action: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        q = np.asarray(state.joint_pos, np.float64).reshape(-1, out.shape[-1])
        k = self.kinematics(q)
        targets = self.osc.targets(np.asarray(action).reshape(q.shape[0], -1), q, k.jac, k.rot)
        out[...] = targets.reshape(out.shape)
        return np.clip(out, self.lower, self.upper, out=out)

    def encode(self, targets: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        q = np.asarray(state.joint_pos, np.float64).reshape(-1, np.shape(targets)[-1])
        action = self.osc.action_of(np.asarray(targets).reshape(q.shape), q, self.kinematics(q).jac)
        out[...] = np.clip(action, -self.clip, self.clip).reshape(out.shape)
        return out


class MeasuredExtras:
    """An arm task's observed quantities (`extra.<key>` observation terms) on a robot: the grasp point from the
    arm model at the measured joints, the object and goal positions from perception (`INPUTS`), through the task's
    own `extras`."""

    def __init__(self, task: ArmTask) -> None:
        self.task = task
        self.inputs: tuple[str, ...] = task.INPUTS
        """Positions the task needs from outside the robot (base frame) [m], by name."""
        self.kinematics = MeasuredKinematics(task.model, task.robot)

    def fill(self, state: RobotState, positions: dict[str, np.ndarray], object_vel: np.ndarray) -> None:
        """`state.extras` (allocated on the first call) of one robot from its measured joints, the input positions
        (3,) by name and the object's velocity (3,)."""
        if not state.extras:
            state.extras = {k: np.zeros(3) for k in self.task.OBS_KEYS}
        ee = self.kinematics(np.asarray(state.joint_pos, np.float64)[None]).ee
        nowhere = np.zeros((1, 3))
        obj = positions["object"][None] if "object" in positions else nowhere
        goal = positions["goal"][None] if "goal" in positions else nowhere
        out = {k: v[None] for k, v in state.extras.items()}  # (1, 3) views: writes land in the state's arrays
        self.task.extras(ee, goal, obj, np.asarray(object_vel)[None], out)


def _arm_task_of(contract: PolicyContract, what: str) -> ArmTask:
    """The arm task the contract's provenance names, built with the task config the policy was trained with."""
    from robot_rl.bundle import task_config_of
    from robot_rl.sim.registry import get_task

    found = task_config_of(contract)
    if found is None:
        raise ContractError(f"{what}: the contract's provenance names no registered arm task (its arm model gives "
                            "the kinematics)")
    name, cfg = found
    task = get_task(name).make_task(cfg)
    if not isinstance(task, ArmTask) or task.contract.joint_names != contract.joint_names:
        raise ContractError(f"{what}: task {name} in the provenance is not an arm task with the contract's joints "
                            f"{contract.joint_names}")
    return task


def measured_extras(contract: PolicyContract) -> MeasuredExtras:
    """The `extra.<key>` observation terms of an arm contract outside the environment (`MeasuredExtras`)."""
    return MeasuredExtras(_arm_task_of(contract, "extra observation terms"))


def measured_codec(contract: PolicyContract) -> ActionCodec:
    """The `ee_delta` codec of a contract outside the environment (`register_codec`): the arm task its provenance
    names builds the arm model from the task config the policy was trained with."""
    return _arm_task_of(contract, "ee_delta action").measured_codec()


# ---- the shared arm task ---------------------------------------------------------------------------------------
class ArmTask(TaskBase):
    """An arm task (see the module docstring); subclasses set the class attributes and the hooks below."""

    OBS_KEYS: ClassVar[tuple[str, ...]] = ("ee_pos", "object_pos", "ee_to_object", "goal_pos", "object_to_goal",
                                           "object_vel")
    """`extra.<key>` quantities the task observes (each 3 wide), in observation order."""
    INPUTS: ClassVar[tuple[str, ...]] = ("object", "goal")
    """Positions the observed quantities need besides the arm's joints (on a robot: from perception)."""
    REACHES_GOAL: ClassVar[bool] = False
    """The hand reaches for the goal (True) or for the object; the success distance is then ee-goal, else
    object-goal."""
    CARRY_ONLY: ClassVar[bool] = False
    """The object-to-goal terms count only while the object is lifted."""
    fall_tilt: float = math.pi
    """A fixed-base arm never falls."""
    only_positive: bool = False
    """Arm rewards are not clipped at zero."""
    NEEDS_GRIPPER: ClassVar[bool] = False
    DRAWS_START: ClassVar[bool] = False
    """Every reset draws whether it starts held or grasped (the pick-and-place curriculum, `init.held_fraction`,
    `init.grasped_fraction`)."""

    @classmethod
    def maker(cls, name: str) -> Callable[[Any], ArmTask]:
        """A task module's `make_task`: this task class, named `name`, on the arm its config names."""
        from robot_rl.sim.registry import get_robot

        return lambda cfg: cls(name, get_robot(cfg.robot).make_robot(), cfg)

    def __init__(self, name: str, robot: ArmRobot, cfg: ManipulationConfig) -> None:
        if not isinstance(robot, ArmRobot):
            raise ConfigError(f"task {name}: robot '{getattr(robot, 'name', robot)}' is not an arm")
        if self.NEEDS_GRIPPER and not robot.has_gripper:
            raise ConfigError(f"task {name}: robot '{robot.name}' has no gripper, {name} needs one")
        super().__init__(name, robot, cfg)
        self.robot: ArmRobot = robot
        self.cfg: ManipulationConfig = cfg
        m = self.model
        if cfg.init.arm_pose and len(cfg.init.arm_pose) != robot.arm_joints:
            raise ConfigError(f"init.arm_pose has {len(cfg.init.arm_pose)} values for {robot.arm_joints} arm joints")
        self.kp = robot.kp * cfg.control.kp_scale
        self.reward_terms = dict(REWARD_TERMS)
        self.reward_weights = {k: float(getattr(cfg.rewards, k)) for k in REWARD_TERMS}
        self.reward_config = cfg.rewards
        self.contract = self._build_contract()
        self.param_ids = ModelIds.lookup(m, obj=OBJECT, damped_joints=robot.joint_names[:robot.arm_joints])
        name_ids(m, mujoco.mjtObj.mjOBJ_GEOM, [TABLE])
        self._ik = mujoco.MjData(m)
        mujoco.mj_resetDataKeyframe(m, self._ik, m.key("home").id)
        mujoco.mj_kinematics(m, self._ik)
        self._ee_id = m.site(robot.ee_site).id
        arm = [m.joint(j).id for j in robot.joint_names[:robot.arm_joints]]
        self._arm_qadr, self._arm_dadr = m.jnt_qposadr[arm], m.jnt_dofadr[arm]
        self._down = self._ik.site_xmat[self._ee_id].reshape(3, 3).copy()
        """Hand orientation at the home pose (pointing down), which the ee_delta controller holds."""
        self.command = np.zeros((0, 0))

    @property
    def act_dim(self) -> int:
        if self.cfg.control.action == "ee_delta":
            return 3 + (1 if self.robot.has_gripper else 0)
        return len(self.robot.joint_names)

    def _build_contract(self) -> PolicyContract:
        c, r = self.cfg.control, self.robot
        n = len(r.joint_names)
        terms = [ObsTerm("joint_pos_rel", n), ObsTerm("joint_vel", n, scale=self.cfg.joint_vel_obs_scale)]
        terms += [ObsTerm(f"extra.{k}", 3) for k in self.OBS_KEYS]
        terms.append(ObsTerm("last_action", self.act_dim))
        if c.action == "ee_delta":
            action = ActionSpec(type="ee_delta", scale=c.ee_delta_scale, clip=1.0, dim=self.act_dim,
                                gripper=r.has_gripper)
        else:
            action = ActionSpec(type="joint_position_delta", scale=c.joint_delta_scale, clip=1.0, dim=n,
                                gripper=r.has_gripper)
        safety = [{"type": "cbf", "model": "coupled", "urdf": r.urdf}] if self.cfg.safety else []
        basics = contract_basics(self.name, r, self.joint_lower, self.joint_upper, c, self.cfg)
        basics["provenance"]["controller"] = {
            "type": "controllers.osc.EndEffectorController", "ee_site": r.ee_site, "arm_joints": r.arm_joints,
            "ik_damping": c.ik_damping, "orientation_gain": c.orientation_gain, "gripper": c.gripper}
        return PolicyContract(**basics, kp=self.kp.tolist(), kd=r.kd.tolist(), action=action, obs_terms=terms,
                              safety=safety)

    # ---- what differs between arm tasks ------------------------------------------------------------------------
    def place(self, obj: np.ndarray, goal: np.ndarray, rest_z: float) -> None:
        """Adjust one episode's drawn object and goal positions in place (the task's own constraints)."""

    def terminated(self, s: ManipView) -> np.ndarray:
        """(N,) the object fell off the table."""
        return s.object_pos[:, 2] < self.cfg.termination.object_drop_height

    def extras(self, ee: np.ndarray, goal: np.ndarray, obj: np.ndarray, obj_vel: np.ndarray,
               out: dict[str, np.ndarray]) -> None:
        """The observed task quantities (OBS_KEYS) into `out`."""
        out["ee_pos"][:] = ee
        out["goal_pos"][:] = goal
        out["object_pos"][:] = obj
        out["ee_to_object"][:] = obj - ee
        out["object_to_goal"][:] = goal - obj
        out["object_vel"][:] = obj_vel

    # ---- episode start -----------------------------------------------------------------------------------------
    def sample_object_goal(self, rng: np.random.Generator, rest_z: float,
                           held: tuple[np.ndarray, float] | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Object (x, y, rest_z + lift) and goal (x, y, z) of one episode; `held`: the object's (x, y) and lift of a
        held or grasped start (from `initial_joints`)."""
        init = self.cfg.init
        xy, lift = held if held is not None else (rng.uniform(init.object_low, init.object_high), 0.0)
        obj = np.array([*xy, rest_z + lift])
        goal = rng.uniform(init.goal_low, init.goal_high)
        for _ in range(10):
            if np.linalg.norm(goal[:2] - obj[:2]) >= init.goal_min_distance:
                break
            goal = rng.uniform(init.goal_low, init.goal_high)
        self.place(obj, goal, rest_z)
        return obj, goal

    def initial_joints(self, rng: np.random.Generator,
                       half: float) -> tuple[np.ndarray, np.ndarray, tuple[np.ndarray, float] | None]:
        """One episode's initial joint positions, joint targets and, for a held or grasped start
        (`init.held_fraction` / `init.grasped_fraction`), the object's (x, y) and lift (`half`: the episode's cube
        half edge)."""
        q = self.robot.default_joint_pos.copy()
        na = self.robot.arm_joints
        init = self.cfg.init
        if init.arm_pose:
            q[:na] = init.arm_pose
        u = rng.random() if self.DRAWS_START else 1.0
        if u < init.held_fraction + init.grasped_fraction:
            grasped = u >= init.held_fraction
            xy = rng.uniform(init.object_low, init.object_high)
            lift = float(rng.uniform(*init.grasped_lift)) if grasped else 0.0
            q[:na] = self.hand_at(np.array([*xy, half + lift]), q[:na])
            q[na:] = half if grasped else self._held_opening()
            q = np.clip(q, self.joint_lower, self.joint_upper)
            targets = q.copy()
            if grasped:
                targets[na:] = self.joint_lower[na:]  # squeezing from the first physics step
            return q, targets, (xy, lift)
        q[:na] += rng.uniform(-init.joint_noise, init.joint_noise, size=na)
        q = np.clip(q, self.joint_lower, self.joint_upper)
        return q, q.copy(), None

    def _object_half(self) -> float:
        return float(self.model.geom_size[self.model.geom(OBJECT).id, 2])

    def _held_opening(self) -> float:
        """Finger joint position of a held start: just wider than the largest randomized cube half edge."""
        return self._object_half() * self.cfg.randomization.upper("object_size") + 0.002

    def hand_at(self, target: np.ndarray, q0: np.ndarray, iterations: int = 50) -> np.ndarray:
        """Arm joints that put the grasp point at `target` (base frame) with the hand pointing down as at the home
        pose (the ee_delta controller's orientation), by damped least squares from q0."""
        m, d, site, na = self.model, self._ik, self._ee_id, self.robot.arm_joints
        lo, hi = self.joint_lower[:na], self.joint_upper[:na]
        q = np.array(q0, dtype=np.float64)
        jac = np.zeros((6, m.nv))
        err = np.zeros(6)
        for _ in range(iterations):
            d.qpos[self._arm_qadr] = q
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            err[:3] = target - d.site_xpos[site]
            err[3:] = orientation_error(d.site_xmat[site].reshape(3, 3), self._down)
            if np.abs(err).max() < 1e-4:
                break
            mujoco.mj_jacSite(m, d, jac[:3], jac[3:], site)
            q = np.clip(q + damped_least_squares(jac[:, self._arm_dadr], err, 0.01), lo, hi)
        return q

    # ---- the task in the environment core (robot_rl.sim.task.Task) ------------------------------------------------
    def allocate(self, batch: Batch, rng: np.random.Generator) -> None:
        self._b = batch
        m, r, n = self.model, self.robot, batch.num_envs
        self._jq = 1 + np.array([m.jnt_qposadr[m.joint(j).id] for j in r.joint_names])
        self._jv = 1 + m.nq + np.array([m.jnt_dofadr[m.joint(j).id] for j in r.joint_names])
        self._mimic_q = np.array([m.jnt_qposadr[m.joint(j).id] for j in r.mimic_joints], np.int64)
        oq = int(m.jnt_qposadr[m.joint(OBJECT).id])
        ov = int(m.jnt_dofadr[m.joint(OBJECT).id])
        self._obj_q = slice(1 + oq, 1 + oq + 7)
        self._obj_v = slice(1 + m.nq + ov, 1 + m.nq + ov + 3)
        self._mocap = int(m.body_mocapid[name_ids(m, mujoco.mjtObj.mjOBJ_BODY, [GOAL])[0]])
        self._arm_dof_cols = np.array([m.jnt_dofadr[m.joint(j).id] for j in r.joint_names[:r.arm_joints]])
        self._kin = mujoco.MjData(m)
        self._kin_jac = np.zeros((6, m.nv))
        self._kin_out = ArmKinematics(ee=np.zeros((n, 3)), rot=np.zeros((n, 3, 3)), jac=np.zeros((n, 6, r.arm_joints)))
        self._goal = np.zeros((n, 3))
        self._rest_z = np.zeros(n)
        self._ep_min_dist = np.zeros(n)
        self.command = np.zeros((n, 0))
        nj = len(r.joint_names)
        self._noisy = RobotState(joint_pos=np.zeros((n, nj)), joint_vel=np.zeros((n, nj)),
                                 base_quat=np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)), base_ang_vel=np.zeros((n, 3)),
                                 base_lin_acc=np.tile([0.0, 0.0, 9.81], (n, 1)), timestamp=np.zeros(n),
                                 extras={k: np.zeros((n, 3)) for k in self.OBS_KEYS})
        # the arm environment has always drawn one set of reset values at construction (then redrawn by the first
        # reset); kept, so that seeded runs reproduce
        sample_terms(self.randomization, rng, n, nj)

    def codec(self) -> ActionCodec:
        c = self.contract
        if c.action.type != "ee_delta":
            return RangedJointDeltaCodec(c)
        k = self._kin_out
        return EeDeltaCodec(self._osc(), float(c.action.clip), k.jac, k.rot, self.joint_lower, self.joint_upper)

    def measured_codec(self) -> ActionCodec:
        """This task's codec for holders of measured joint positions only (the robot, replay): `ee_delta` reads the
        kinematics of this task's arm model at the measured joints."""
        c = self.contract
        if c.action.type != "ee_delta":
            return RangedJointDeltaCodec(c)
        return MeasuredEeDeltaCodec(MeasuredKinematics(self.model, self.robot), self._osc(), float(c.action.clip),
                                    self.joint_lower, self.joint_upper)

    def _osc(self) -> EndEffectorController:
        c, r = self.contract, self.robot
        grip = (self.joint_lower[-1], self.joint_upper[-1]) if r.has_gripper else (0.0, 0.0)
        return EndEffectorController(
            arm_joints=r.arm_joints, scale=c.action.scale, damping=self.cfg.control.ik_damping,
            orientation_gain=self.cfg.control.orientation_gain, target_rot=self._down.copy(),
            gripper_lower=float(grip[0]), gripper_upper=float(grip[1]),
            gripper_binary=self.cfg.control.gripper == "binary")

    def reset_batch(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        """Nothing drawn per batch: every draw of an arm reset belongs to its world."""

    def init_world(self, i: int, rng: np.random.Generator, model: mujoco.MjModel, data: mujoco.MjData) -> None:
        self._goal[i], self._rest_z[i] = self.start_episode(rng, model, data)

    def start_episode(self, rng: np.random.Generator, model: mujoco.MjModel,
                      data: mujoco.MjData) -> tuple[np.ndarray, float]:
        """One episode's start written into `data` (arm, object, goal marker, joint targets in `ctrl`); returns the
        goal and the object's rest height. Also what a single simulated scene (robot_rl.sim.arm_sim) resets with."""
        r = self.robot
        half = float(model.geom_size[self.param_ids.object_geom][2])
        mujoco.mj_resetDataKeyframe(model, data, model.key("home").id)
        q, targets, held = self.initial_joints(rng, half)
        data.qpos[[model.jnt_qposadr[model.joint(j).id] for j in r.joint_names]] = q
        data.qpos[[model.jnt_qposadr[model.joint(j).id] for j in r.mimic_joints]] = q[-1]
        obj, goal = self.sample_object_goal(rng, half, held)
        oq = int(model.jnt_qposadr[model.joint(OBJECT).id])
        data.qpos[oq:oq + 3] = obj
        data.mocap_pos[model.body_mocapid[model.body(GOAL).id]] = goal
        data.ctrl[:] = targets
        return goal, half

    def finish_reset(self, idx: np.ndarray, rng: np.random.Generator) -> None:
        self._ep_min_dist[idx] = np.inf

    def perturb(self, rng: np.random.Generator) -> None:
        """No interval events on arms."""

    def sense(self) -> ArmKinematics:
        """Grasp-point position, orientation and 6 x arm Jacobian of every world from its current joint state,
        into the task's kinematics buffers (which the ee_delta codec reads)."""
        m, d, jac, k = self.model, self._kin, self._kin_jac, self._kin_out
        nq, state = m.nq, self._b.state
        for i in range(self._b.num_envs):
            d.qpos[:] = state[i, 1:1 + nq]
            k.fill(i, m, d, self._ee_id, self._arm_dof_cols, jac)
        return k

    def view(self, sensed: ArmKinematics) -> ManipView:
        b, ee = self._b, sensed.ee
        obj = b.state[:, self._obj_q][:, :3]
        other = ee if self.REACHES_GOAL else obj
        return ManipView(ee_pos=ee, goal=self._goal, object_pos=obj, object_rest_z=self._rest_z,
                         joint_vel=b.state[:, self._jv], action=b.applied, last_action=b.last_action,
                         policy_action=b.action, intervened=b.intervened,
                         target=self._goal if self.REACHES_GOAL else obj,
                         distance=np.linalg.norm(self._goal - other, axis=1), carry_only=self.CARRY_ONLY)

    def logged_view(self, steps: LoggedSteps) -> tuple[ManipView, frozenset[str]]:
        """The reward view of T logged transitions (replay): the task quantities from the `extra.*` terms of the
        observation after each action (what the robot observed: the grasp point from its joints, object and goal
        from perception), the object's rest height from the nominal cube; the joints and actions of the ticks. A
        position the task does not observe (reach's parked object) is zero; its reward terms do not read it. No
        term needs an input beyond the ticks."""
        observations = steps.observations
        t = observations.shape[0]
        found: dict[str, np.ndarray] = {}
        off = 0
        for term in self.contract.obs_terms:
            if term.name.startswith("extra."):
                found[term.name[len("extra."):]] = np.asarray(observations[:, off:off + term.dim], np.float64) / \
                    term.scale
            off += term.dim * term.history
        ee, goal = found["ee_pos"], found["goal_pos"]
        obj = found.get("object_pos", np.zeros((t, 3)))
        other = ee if self.REACHES_GOAL else obj
        return ManipView(ee_pos=ee, goal=goal, object_pos=obj, object_rest_z=np.full(t, self._object_half()),
                         joint_vel=steps.joint_vel, action=steps.applied, last_action=steps.last_action,
                         policy_action=steps.policy_action, intervened=steps.intervened,
                         target=goal if self.REACHES_GOAL else obj, distance=np.linalg.norm(goal - other, axis=1),
                         carry_only=self.CARRY_ONLY), frozenset()

    def rewards(self, s: ManipView) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        """Total reward and the weighted terms (each multiplied by weight and policy period)."""
        return weighted_sum(self.reward_terms, self.reward_weights, s, self.reward_config, self.policy_dt,
                            s.ee_pos.shape[0])

    def success(self, s: ManipView) -> np.ndarray:
        return s.distance < self.cfg.rewards.success_threshold

    def track(self, view: ManipView) -> None:
        np.minimum(self._ep_min_dist, view.distance, out=self._ep_min_dist)

    def episode_metrics(self, view: ManipView, i: int, terminated: bool) -> dict[str, Any]:
        return {"success": bool(view.distance[i] < self.cfg.rewards.success_threshold),
                "final_distance": float(view.distance[i]), "min_distance": float(self._ep_min_dist[i])}

    def measure(self, sensed: ArmKinematics, rng: np.random.Generator) -> RobotState:
        """Sensor model: white noise on joints and on the object's position (what the policy sees)."""
        p, s, st = self._b.params, self._noisy, self._b.state
        n, nj = s.joint_pos.shape
        s.joint_pos[:] = st[:, self._jq] + rng.standard_normal((n, nj)) * p["joint_pos_noise"][:, None]
        s.joint_vel[:] = st[:, self._jv] + rng.standard_normal((n, nj)) * p["joint_vel_noise"][:, None]
        obj = st[:, self._obj_q][:, :3] + rng.standard_normal((n, 3)) * p["object_pos_noise"][:, None]
        self.extras(sensed.ee, self._goal, obj, st[:, self._obj_v], s.extras)
        s.timestamp = self._b.ep_step * self.policy_dt
        return s

    def true_state(self, sensed: ArmKinematics) -> RobotState:
        b, n = self._b, self._b.num_envs
        extras = {k: np.zeros((n, 3)) for k in self.OBS_KEYS}
        self.extras(sensed.ee, self._goal, b.state[:, self._obj_q][:, :3], b.state[:, self._obj_v], extras)
        return RobotState(joint_pos=b.state[:, self._jq].copy(), joint_vel=b.state[:, self._jv].copy(),
                          base_quat=np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)), base_ang_vel=np.zeros((n, 3)),
                          base_lin_acc=np.tile([0.0, 0.0, 9.81], (n, 1)), timestamp=b.ep_step * self.policy_dt,
                          base_pos=np.zeros((n, 3)), extras=extras)

    def render_scene(self, env: int, data: mujoco.MjData) -> mujoco.MjvCamera:
        """The goal marker at world `env`'s goal; a fixed camera facing the arm."""
        data.mocap_pos[self._mocap] = self._goal[env]
        cam = mujoco.MjvCamera()
        cam.lookat[:] = [0.45, 0.0, 0.15]
        cam.distance, cam.azimuth, cam.elevation = 1.4, 150.0, -25.0
        return cam


def arm_train_defaults(**changes: Any) -> dict[str, Any]:
    """`robot-rl train` defaults of an arm task (a fresh dict): a reach task's, with what a task measured otherwise
    in `changes`."""
    return {"num_envs": 32, "max_minutes": 8.0, "task_overrides": ["num_threads=2"], "eval_overrides": [],
            "eval_episodes": 100, **changes}


class ReachTask(ArmTask):
    """Move the grasp point to a goal; the object is parked out of the way and never ends an episode."""

    OBS_KEYS = ("ee_pos", "goal_pos", "ee_to_goal")
    INPUTS = ("goal",)
    REACHES_GOAL = True

    def place(self, obj: np.ndarray, goal: np.ndarray, rest_z: float) -> None:
        obj[:2] = self.cfg.init.object_low  # parked out of the way; reach ignores it

    def terminated(self, s: ManipView) -> np.ndarray:
        return np.zeros(s.ee_pos.shape[0], bool)

    def extras(self, ee: np.ndarray, goal: np.ndarray, obj: np.ndarray, obj_vel: np.ndarray,
               out: dict[str, np.ndarray]) -> None:
        out["ee_pos"][:] = ee
        out["goal_pos"][:] = goal
        out["ee_to_goal"][:] = goal - ee


class PushTask(ArmTask):
    """Push the object across the table to a goal on the table."""

    def place(self, obj: np.ndarray, goal: np.ndarray, rest_z: float) -> None:
        goal[2] = rest_z


class PickPlaceTask(ArmTask):
    """Grasp the object and hold it at a goal in the air; the goal terms count only while it is lifted."""

    CARRY_ONLY = True
    NEEDS_GRIPPER = True
    DRAWS_START = True


register_codec("ee_delta", measured_codec)
