"""PyBullet backend: the same tasks, URDFs, RobotState, observations, rewards and randomization as MuJoCo, with
PyBullet (DIRECT mode, one client per environment) integrating the physics.

`BulletEngine` is the "pybullet" physics engine of the environment core (robot_rl.sim.engine.PhysicsEngine, registered
here): it steps N worlds and reports them in MuJoCo's full-physics state and sensordata layout, so everything else
(contract, observation, reward, reset and randomization code) is the core's own:

- the robot is loaded from the same URDF (`URDF_USE_INERTIA_FROM_FILE`), joints are matched by name, bodies and
  sites by URDF link name (links MuJoCo fused into their parent map to that parent);
- default velocity motors are disabled and every joint runs `controllers.pd_torque` in TORQUE_CONTROL at physics
  rate, with the gains, motor strength and torque limits read from the environment's (randomized) MuJoCo actuator
  coefficients, plus the model's passive joint damping and, for bodies with `gravcomp`, gravity compensation from
  PyBullet's inverse dynamics;
- the scene (ground plane, table, free box objects) is rebuilt from the MuJoCo model's world geoms; friction follows
  MuJoCo's "priority geom decides" rule through PyBullet's product rule (every other surface at 1), masses follow
  the model's per-episode values, a resized object is re-created;
- MuJoCo joint equalities (the Panda's coupled fingers) become PyBullet gear constraints;
- sensors the environments read are filled from PyBullet: actuator torque (every sub-step), IMU frame orientation,
  gyro, velocimeter and accelerometer, and touch (normal force of contacts whose point lies in the touch site).

Approximated: joint armature (PyBullet has none) is added to the child link's inertia about the joint axis. Not
mapped: a centre-of-mass offset of the base (PyBullet cannot move a link's inertial frame after loading).
"""

from __future__ import annotations

import copy
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from robot_rl.controllers import pd_torque
from robot_rl.errors import AssetError, ConfigError
from robot_rl.sim.engine import EngineRequest, register_engine
from robot_rl.sim.robot_sim import SimRobot

GRAVITY = 9.81
ARM_SUBSTEPS = 2
"""PyBullet steps per MuJoCo physics step for fixed-base arms, the PD torque recomputed on each. MuJoCo integrates
the PD's damping implicitly; PyBullet explicitly, and with the Panda's joint damping (50 N m s/rad) the mode in which
joints 1 and 3 counter-rotate (coaxial when joint 2 is near 0, only links 1-2 move, I ~ 0.2 kg m^2) needs
kd * dt / I < 2: 2.5 at 200 Hz, 1.25 at 400 Hz."""


def _bullet() -> Any:
    try:
        import pybullet
    except ImportError:
        raise ConfigError("backend 'pybullet' needs pybullet (pip install pybullet)") from None
    return pybullet


def _wxyz(q_xyzw: Any) -> np.ndarray:
    return np.array([q_xyzw[3], q_xyzw[0], q_xyzw[1], q_xyzw[2]])


def _xyzw(q_wxyz: np.ndarray) -> list[float]:
    return [float(q_wxyz[1]), float(q_wxyz[2]), float(q_wxyz[3]), float(q_wxyz[0])]


def _rot(q_wxyz: np.ndarray) -> np.ndarray:
    m = np.zeros(9)
    mujoco.mju_quat2Mat(m, np.asarray(q_wxyz, float))
    return m.reshape(3, 3)


@dataclass
class _Touch:
    col: int
    """Sensordata column."""
    body: int
    """MuJoCo body of the site."""
    site: int
    kind: int
    size: np.ndarray


@dataclass
class _Layout:
    """Name matching between a MuJoCo model and its PyBullet twin (computed once per task)."""

    urdf: str
    floating: bool
    qadr: np.ndarray
    """MuJoCo qpos address of each mapped PyBullet joint."""
    vadr: np.ndarray
    jidx: list[int]
    """PyBullet joint index of each mapped joint (same order)."""
    act_col: np.ndarray
    """Column (into jidx) driven by each MuJoCo actuator."""
    link_body: dict[int, int]
    """PyBullet link index (-1 base) -> MuJoCo body id."""
    colliding: dict[int, bool]
    gravcomp: bool
    equalities: list[tuple[int, int]]
    """(PyBullet joint a, joint b) pairs coupled q_b = q_a."""
    objects: list[dict[str, Any]] = field(default_factory=list)
    """Free box bodies: name, body id, geom id, qpos/qvel address."""
    statics: list[dict[str, Any]] = field(default_factory=list)
    """World geoms: plane or box."""
    touches: list[_Touch] = field(default_factory=list)
    sensors: dict[str, list[int]] = field(default_factory=dict)
    """Sensor type -> sensordata columns (framequat 4, gyro 3, velocimeter 3, accelerometer 3)."""
    torque_cols: list[tuple[int, int]] = field(default_factory=list)
    """(sensordata column, actuator) of actuator-force sensors."""


def _check_urdf(path: str) -> str:
    if not path:
        raise AssetError("this task's robot names no URDF for the pybullet backend")
    if not Path(path).is_file():
        raise AssetError(f"URDF not found: {path}")
    return path


class BulletWorld:
    """One PyBullet DIRECT client with one robot and its scene, mirroring a MuJoCo model."""

    def __init__(self, layout: _Layout, model: mujoco.MjModel) -> None:
        pb = _bullet()
        from pybullet_utils import bullet_client

        self.pb = pb
        self.layout = layout
        self.c = c = bullet_client.BulletClient(connection_mode=pb.DIRECT)
        c.setGravity(0.0, 0.0, -GRAVITY)
        self.substeps = 1 if layout.floating else ARM_SUBSTEPS
        c.setTimeStep(float(model.opt.timestep) / self.substeps)
        c.setPhysicsEngineParameter(numSubSteps=0, deterministicOverlappingPairs=1)
        try:
            self.robot = c.loadURDF(layout.urdf, useFixedBase=not layout.floating,
                                    flags=pb.URDF_USE_INERTIA_FROM_FILE)
        except pb.error as exc:
            raise AssetError(f"PyBullet cannot load {layout.urdf}: {exc}") from None
        n_links = c.getNumJoints(self.robot)
        for link in range(-1, n_links):
            c.changeDynamics(self.robot, link, linearDamping=0.0, angularDamping=0.0, lateralFriction=1.0,
                             jointDamping=0.0)
            if not layout.colliding.get(link, False):
                c.setCollisionFilterGroupMask(self.robot, link, 0, 0)
        for j, va in zip(layout.jidx, layout.vadr):
            self._add_armature(j, float(model.dof_armature[va]))
        all_joints = [j for j in range(n_links) if c.getJointInfo(self.robot, j)[2] != pb.JOINT_FIXED]
        c.setJointMotorControlArray(self.robot, all_joints, pb.VELOCITY_CONTROL, forces=[0.0] * len(all_joints))
        self.movable = all_joints
        self._mov_pos = {j: k for k, j in enumerate(all_joints)}
        for a, b in layout.equalities:
            cid = c.createConstraint(self.robot, a, self.robot, b, jointType=pb.JOINT_GEAR, jointAxis=[1, 0, 0],
                                     parentFramePosition=[0, 0, 0], childFramePosition=[0, 0, 0])
            c.changeConstraint(cid, gearRatio=-1, erp=0.2, maxForce=1000)
        self.base_mass0 = c.getDynamicsInfo(self.robot, -1)[0]
        info = c.getDynamicsInfo(self.robot, -1)
        self.com_local = np.array(info[3])
        self.com_quat_local = _wxyz(info[4])
        self.statics: list[int] = []
        for s in layout.statics:
            self.statics.append(self._make_static(s, model))
        self.objects: list[int] = [-1] * len(layout.objects)
        self.obj_size: list[np.ndarray] = [np.zeros(3)] * len(layout.objects)
        self.cache: dict[str, Any] = {}
        self.last = np.zeros(0)
        self.jidx = layout.jidx
        self.friction_static: list[float] = [-1.0] * len(layout.statics)
        self.robot_mass_delta = 0.0
        self.prev_vel = np.zeros(3)

    def _add_armature(self, joint: int, armature: float) -> None:
        """Approximate MuJoCo's joint armature (rotor inertia, on the joint's own diagonal only) by adding it to the
        child link's inertia about the joint axis; PyBullet has no armature."""
        if armature <= 0.0:
            return
        c = self.c
        axis = np.asarray(c.getJointInfo(self.robot, joint)[13], float)
        info = c.getDynamicsInfo(self.robot, joint)
        inertial_axis = _rot(_wxyz(info[4])).T @ axis
        diag = np.asarray(info[2], float) + armature * inertial_axis ** 2
        c.changeDynamics(self.robot, joint, localInertiaDiagonal=diag.tolist())

    def _make_static(self, s: dict[str, Any], model: mujoco.MjModel) -> int:
        c, pb = self.c, self.pb
        if s["type"] == "plane":
            shape = c.createCollisionShape(pb.GEOM_PLANE)
            return int(c.createMultiBody(0, shape, basePosition=list(s["pos"])))
        shape = c.createCollisionShape(pb.GEOM_BOX, halfExtents=list(s["size"]))
        return int(c.createMultiBody(0, shape, basePosition=list(s["pos"]), baseOrientation=_xyzw(s["quat"])))

    # ---- parameters ----------------------------------------------------------------------------------------------
    def sync_params(self, model: mujoco.MjModel, nominal: mujoco.MjModel) -> None:
        """Copy the environment's randomized values (friction, masses, object size) into PyBullet."""
        c, lay = self.c, self.layout
        for k, s in enumerate(lay.statics):
            f = float(model.geom_friction[s["geom"], 0])
            if f != self.friction_static[k]:
                c.changeDynamics(self.statics[k], -1, lateralFriction=f)
                self.friction_static[k] = f
        root = lay.link_body.get(-1, -1)
        if lay.floating and root >= 0:
            delta = float(model.body_mass[root] - nominal.body_mass[root])
            if delta != self.robot_mass_delta:
                c.changeDynamics(self.robot, -1, mass=self.base_mass0 + delta)
                self.robot_mass_delta = delta
        for k, o in enumerate(lay.objects):
            size = model.geom_size[o["geom"]].copy()
            mass = float(model.body_mass[o["body"]])
            if self.objects[k] < 0 or not np.array_equal(size, self.obj_size[k]):
                if self.objects[k] >= 0:
                    c.removeBody(self.objects[k])
                shape = c.createCollisionShape(self.pb.GEOM_BOX, halfExtents=size.tolist())
                self.objects[k] = int(c.createMultiBody(mass, shape, basePosition=[0, 0, 1]))
                c.changeDynamics(self.objects[k], -1, linearDamping=0.0, angularDamping=0.0)
                self.obj_size[k] = size
                self.cache[f"obj_mass{k}"] = mass
            if self.cache.get(f"obj_mass{k}") != mass:
                c.changeDynamics(self.objects[k], -1, mass=mass)
                self.cache[f"obj_mass{k}"] = mass
            f = float(model.geom_friction[o["geom"], 0])
            if self.cache.get(f"obj_fric{k}") != f:
                c.changeDynamics(self.objects[k], -1, lateralFriction=f)
                self.cache[f"obj_fric{k}"] = f

    # ---- state ---------------------------------------------------------------------------------------------------
    def write_state(self, model: mujoco.MjModel, row: np.ndarray) -> None:
        """Put MuJoCo full-physics state `row` ([time, qpos, qvel, ...]) into PyBullet."""
        c, lay = self.c, self.layout
        nq = model.nq
        qpos, qvel = row[1:1 + nq], row[1 + nq:1 + nq + model.nv]
        if lay.floating:
            pos, quat = qpos[0:3], qpos[3:7] / np.linalg.norm(qpos[3:7])
            r = _rot(quat)
            com = pos + r @ self.com_local
            com_quat = np.zeros(4)
            mujoco.mju_mulQuat(com_quat, quat, self.com_quat_local)
            c.resetBasePositionAndOrientation(self.robot, com.tolist(), _xyzw(com_quat))
            w_world = r @ qvel[3:6]
            v_com = qvel[0:3] + np.cross(w_world, r @ self.com_local)
            c.resetBaseVelocity(self.robot, v_com.tolist(), w_world.tolist())
            self.prev_vel = qvel[0:3].copy()
        for j, qa, va in zip(lay.jidx, lay.qadr, lay.vadr):
            c.resetJointState(self.robot, j, float(qpos[qa]), float(qvel[va]))
        for k, o in enumerate(lay.objects):
            p, q = qpos[o["qadr"]:o["qadr"] + 3], qpos[o["qadr"] + 3:o["qadr"] + 7]
            c.resetBasePositionAndOrientation(self.objects[k], p.tolist(), _xyzw(q / np.linalg.norm(q)))
            v, w_local = qvel[o["vadr"]:o["vadr"] + 3], qvel[o["vadr"] + 3:o["vadr"] + 6]
            c.resetBaseVelocity(self.objects[k], v.tolist(), (_rot(q) @ w_local).tolist())

    def read_state(self, model: mujoco.MjModel, row: np.ndarray) -> None:
        """Write PyBullet's state into `row` (qpos and qvel only; other entries are left as they are)."""
        c, lay = self.c, self.layout
        nq = model.nq
        qpos, qvel = row[1:1 + nq], row[1 + nq:1 + nq + model.nv]
        if lay.floating:
            com, com_q = c.getBasePositionAndOrientation(self.robot)
            v_com, w_world = c.getBaseVelocity(self.robot)
            inv = np.zeros(4)
            mujoco.mju_negQuat(inv, self.com_quat_local)
            quat = np.zeros(4)
            mujoco.mju_mulQuat(quat, _wxyz(com_q), inv)
            r = _rot(quat)
            qpos[0:3] = np.asarray(com) - r @ self.com_local
            qpos[3:7] = quat
            w = np.asarray(w_world)
            qvel[0:3] = np.asarray(v_com) - np.cross(w, r @ self.com_local)
            qvel[3:6] = r.T @ w
        states = c.getJointStates(self.robot, lay.jidx)
        qpos[lay.qadr] = [s[0] for s in states]
        qvel[lay.vadr] = [s[1] for s in states]
        for k, o in enumerate(lay.objects):
            p, q = c.getBasePositionAndOrientation(self.objects[k])
            v, w = c.getBaseVelocity(self.objects[k])
            qw = _wxyz(q)
            qpos[o["qadr"]:o["qadr"] + 3] = p
            qpos[o["qadr"] + 3:o["qadr"] + 7] = qw
            qvel[o["vadr"]:o["vadr"] + 3] = v
            qvel[o["vadr"] + 3:o["vadr"] + 6] = _rot(qw).T @ np.asarray(w)

    # ---- stepping ------------------------------------------------------------------------------------------------
    def step(self, model: mujoco.MjModel, ctrl: np.ndarray, torque_out: np.ndarray,
             joints_out: np.ndarray | None = None) -> None:
        """Physics steps with held targets ctrl (nstep, nu); applied actuator torques into torque_out (nstep, nu);
        joint positions and velocities at the start of each physics step into joints_out (nstep, 2, n)."""
        c, lay, pb = self.c, self.layout, self.pb
        gain = model.actuator_gainprm[:, 0]
        kd = -model.actuator_biasprm[:, 2]
        limit = model.actuator_forcerange[:, 1]
        damping = model.dof_damping[lay.vadr]
        cols = lay.act_col
        n = len(lay.jidx)
        tau = np.zeros(n)
        for k in range(ctrl.shape[0]):
            for sub in range(self.substeps):
                states = c.getJointStates(self.robot, lay.jidx)
                q = np.fromiter((s[0] for s in states), float, n)
                qd = np.fromiter((s[1] for s in states), float, n)
                tau[:] = -damping * qd
                act = pd_torque(q[cols], qd[cols], ctrl[k], gain, kd, 1.0, limit)
                tau[cols] += act
                if sub == 0:
                    torque_out[k] = act
                    if joints_out is not None:
                        joints_out[k, 0], joints_out[k, 1] = q, qd
                if lay.gravcomp:
                    tau += self._gravity(q)
                c.setJointMotorControlArray(self.robot, lay.jidx, pb.TORQUE_CONTROL, forces=tau.tolist())
                if k == ctrl.shape[0] - 1 and lay.floating:
                    self.prev_vel = self._origin_velocity()
                c.stepSimulation()

    def _gravity(self, q: np.ndarray) -> np.ndarray:
        """Joint torques that hold the arm against gravity (inverse dynamics at zero velocity and acceleration)."""
        all_states = self.c.getJointStates(self.robot, self.movable)
        pos = [s[0] for s in all_states]
        zeros = [0.0] * len(pos)
        g = self.c.calculateInverseDynamics(self.robot, pos, zeros, zeros)
        return np.array([g[self._mov_pos[j]] for j in self.layout.jidx])

    def _origin_velocity(self) -> np.ndarray:
        com, com_q = self.c.getBasePositionAndOrientation(self.robot)
        v_com, w = self.c.getBaseVelocity(self.robot)
        r = _rot(_wxyz(com_q))
        offset = r @ (_rot(self.com_quat_local).T @ self.com_local)
        return np.asarray(v_com) - np.cross(np.asarray(w), offset)

    def contacts(self) -> list[tuple[int, np.ndarray, float]]:
        """(robot link, world point on the robot, normal force) of every robot contact."""
        out = []
        for cp in self.c.getContactPoints(bodyA=self.robot):
            out.append((int(cp[3]), np.asarray(cp[5]), float(cp[9])))
        return out

    def close(self) -> None:
        try:
            self.c.disconnect()
        except Exception:  # noqa: BLE001 - already disconnected
            pass


def build_layout(model: mujoco.MjModel, urdf: str) -> _Layout:
    """Match a MuJoCo model with PyBullet's view of the same URDF by names."""
    pb = _bullet()
    from pybullet_utils import bullet_client

    c = bullet_client.BulletClient(connection_mode=pb.DIRECT)
    try:
        floating = model.njnt > 0 and model.jnt_type[0] == mujoco.mjtJoint.mjJNT_FREE and \
            model.body(int(model.jnt_bodyid[0])).name not in ("object",)
        try:
            robot = c.loadURDF(urdf, useFixedBase=not floating, flags=pb.URDF_USE_INERTIA_FROM_FILE)
        except pb.error as exc:
            raise AssetError(f"PyBullet cannot load {urdf}: {exc}") from None
        infos = [c.getJointInfo(robot, j) for j in range(c.getNumJoints(robot))]
        base_name = c.getBodyInfo(robot)[0].decode()
    finally:
        c.disconnect()
    link_names = {-1: base_name}
    parent = {-1: -2}
    for j, info in enumerate(infos):
        link_names[j] = info[12].decode()
        parent[j] = int(info[16])

    def body_of(link: int) -> int:
        while link >= -1:
            bid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, link_names[link])
            if bid >= 0:
                return bid
            link = parent[link]
        return -1

    link_body = {link: body_of(link) for link in link_names}
    colliding = {}
    for link, bid in link_body.items():
        geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] == bid]
        colliding[link] = bool(bid >= 0 and any(model.geom_contype[g] or model.geom_conaffinity[g] for g in geoms))
    jidx, qadr, vadr, mj_joint = [], [], [], []
    for j, info in enumerate(infos):
        if info[2] == pb.JOINT_FIXED:
            continue
        jid = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_JOINT, info[1].decode())
        if jid < 0:
            raise AssetError(f"{urdf}: joint {info[1].decode()} is not in the MuJoCo model")
        jidx.append(j)
        qadr.append(int(model.jnt_qposadr[jid]))
        vadr.append(int(model.jnt_dofadr[jid]))
        mj_joint.append(jid)
    act_col = []
    for a in range(model.nu):
        jid = int(model.actuator_trnid[a, 0])
        if jid not in mj_joint:
            raise AssetError(f"actuator {model.actuator(a).name} drives a joint PyBullet does not have")
        act_col.append(mj_joint.index(jid))
    equalities = []
    for e in range(model.neq):
        if model.eq_type[e] == mujoco.mjtEq.mjEQ_JOINT and model.eq_active0[e]:
            a, b = int(model.eq_obj1id[e]), int(model.eq_obj2id[e])
            equalities.append((jidx[mj_joint.index(a)], jidx[mj_joint.index(b)]))
    robot_bodies = {b for b in link_body.values() if b >= 0}
    gravcomp = bool(any(model.body_gravcomp[b] > 0 for b in robot_bodies))
    lay = _Layout(urdf=urdf, floating=floating, qadr=np.array(qadr), vadr=np.array(vadr), jidx=jidx,
                  act_col=np.array(act_col), link_body=link_body, colliding=colliding, gravcomp=gravcomp,
                  equalities=equalities)
    for j in range(model.njnt):
        if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE and int(model.jnt_bodyid[j]) not in robot_bodies:
            bid = int(model.jnt_bodyid[j])
            geoms = [g for g in range(model.ngeom) if model.geom_bodyid[g] == bid]
            if len(geoms) != 1 or model.geom_type[geoms[0]] != mujoco.mjtGeom.mjGEOM_BOX:
                raise AssetError(f"pybullet backend: free body {model.body(bid).name} must be one box geom")
            lay.objects.append({"name": model.body(bid).name, "body": bid, "geom": geoms[0],
                                "qadr": int(model.jnt_qposadr[j]), "vadr": int(model.jnt_dofadr[j])})
    for g in range(model.ngeom):
        if model.geom_bodyid[g] != 0 or not (model.geom_contype[g] or model.geom_conaffinity[g]):
            continue
        kind = model.geom_type[g]
        if kind == mujoco.mjtGeom.mjGEOM_PLANE:
            lay.statics.append({"type": "plane", "geom": g, "pos": model.geom_pos[g].copy()})
        elif kind == mujoco.mjtGeom.mjGEOM_BOX:
            lay.statics.append({"type": "box", "geom": g, "pos": model.geom_pos[g].copy(),
                                "size": model.geom_size[g].copy(), "quat": model.geom_quat[g].copy()})
    _map_sensors(model, lay)
    return lay


def _map_sensors(model: mujoco.MjModel, lay: _Layout) -> None:
    st = mujoco.mjtSensor
    for s in range(model.nsensor):
        adr = int(model.sensor_adr[s])
        kind = model.sensor_type[s]
        if kind == st.mjSENS_ACTUATORFRC:
            lay.torque_cols.append((adr, int(model.sensor_objid[s])))
        elif kind == st.mjSENS_TOUCH:
            site = int(model.sensor_objid[s])
            lay.touches.append(_Touch(col=adr, body=int(model.site_bodyid[site]), site=site,
                                      kind=int(model.site_type[site]), size=model.site_size[site].copy()))
        elif kind in (st.mjSENS_FRAMEQUAT, st.mjSENS_GYRO, st.mjSENS_VELOCIMETER, st.mjSENS_ACCELEROMETER):
            lay.sensors.setdefault(str(int(kind)), []).append(adr)


class BulletEngine:
    """The "pybullet" physics engine: one PyBullet DIRECT client per world (robot_rl.sim.engine.PhysicsEngine).

    A world's parameters and state are copied into PyBullet before a step whenever its state row is not the one
    PyBullet left (a reset, a restored row, a push) or `set_params` named it."""

    name = "pybullet"

    def __init__(self, request: EngineRequest) -> None:
        model = request.model
        self.nominal = model
        self.layout = build_layout(model, _check_urdf(request.urdf))
        self.worlds = [BulletWorld(self.layout, model) for _ in range(request.num_envs)]
        self._kin = mujoco.MjData(model)
        self._last: list[np.ndarray | None] = [None] * request.num_envs

    def load(self, nominal: mujoco.MjModel, num_envs: int) -> list[mujoco.MjModel]:
        return [copy.copy(nominal) for _ in range(num_envs)]

    def set_params(self, idx: np.ndarray) -> None:
        for i in idx:
            self._last[int(i)] = None

    def step(self, models: list[mujoco.MjModel], initial_state: np.ndarray, control: np.ndarray, state: np.ndarray,
             sensordata: np.ndarray) -> None:
        m = self.nominal
        nstep = control.shape[1]
        dt = float(m.opt.timestep)
        nu = m.nu
        torques = np.zeros((nstep, nu))
        joints = np.zeros((nstep, 2, len(self.layout.jidx)))
        for i, world in enumerate(self.worlds):
            row = initial_state[i]
            last = self._last[i]
            if last is None or not np.array_equal(last, row):
                world.sync_params(models[i], self.nominal)
                world.write_state(models[i], row)
            world.step(models[i], control[i], torques, joints)
            out = state[i, -1]
            out[:] = row
            world.read_state(models[i], out)
            out[0] = row[0] + nstep * dt
            state[i, :-1] = out
            # joints after each physics step (= at the start of the next); bodies only at the last one
            for k in range(nstep - 1):
                state[i, k, 0] = row[0] + (k + 1) * dt
                state[i, k, 1 + self.layout.qadr] = joints[k + 1, 0]
                state[i, k, 1 + m.nq + self.layout.vadr] = joints[k + 1, 1]
            self._last[i] = out.copy()
            if sensordata.shape[-1]:
                self._sensors(world, models[i], out, torques, sensordata[i], dt)

    def _sensors(self, world: BulletWorld, model: mujoco.MjModel, row: np.ndarray, torques: np.ndarray,
                 sens: np.ndarray, dt: float) -> None:
        lay = self.layout
        for col, act in lay.torque_cols:
            sens[:, col] = torques[:, act]
        last = sens[-1]
        nq = model.nq
        qpos, qvel = row[1:1 + nq], row[1 + nq:1 + nq + model.nv]
        st = mujoco.mjtSensor
        if lay.floating:
            quat = qpos[3:7]
            r = _rot(quat)
            for col in lay.sensors.get(str(int(st.mjSENS_FRAMEQUAT)), []):
                last[col:col + 4] = quat
            for col in lay.sensors.get(str(int(st.mjSENS_GYRO)), []):
                last[col:col + 3] = qvel[3:6]
            for col in lay.sensors.get(str(int(st.mjSENS_VELOCIMETER)), []):
                last[col:col + 3] = r.T @ qvel[0:3]
            acc = (qvel[0:3] - world.prev_vel) / dt + np.array([0.0, 0.0, GRAVITY])
            for col in lay.sensors.get(str(int(st.mjSENS_ACCELEROMETER)), []):
                last[col:col + 3] = r.T @ acc
        if lay.touches:
            d = self._kin
            d.qpos[:] = qpos
            mujoco.mj_kinematics(model, d)
            for t in lay.touches:
                last[t.col] = 0.0
            for link, point, force in world.contacts():
                body = lay.link_body.get(link, -1)
                for t in lay.touches:
                    if t.body == body and _inside(point, d.site_xpos[t.site], d.site_xmat[t.site], t.kind, t.size):
                        last[t.col] += force

    def close(self) -> None:
        for w in self.worlds:
            w.close()


def _inside(p: np.ndarray, pos: np.ndarray, mat: np.ndarray, kind: int, size: np.ndarray) -> bool:
    local = mat.reshape(3, 3).T @ (p - pos)
    if kind == mujoco.mjtGeom.mjGEOM_BOX:
        return bool(np.all(np.abs(local) <= size + 1e-4))
    return bool(local @ local <= (size[0] + 1e-4) ** 2)


def raw_physics_rate(env: Any, seconds: float) -> float:
    """Bare `stepSimulation` calls per second on one of the environment's PyBullet worlds (torques held; one
    thread): the reference for `robot-rl bench sim --backend pybullet`."""
    world = env.engine.worlds[0]
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            world.c.stepSimulation()
        n += 100
    return n / world.substeps / (time.perf_counter() - start)


class BulletSimRobot(SimRobot):
    """`make_robot_sim(robot, backend="pybullet")`: robot_rl.sim.robot_sim.SimRobot with PyBullet physics.

    Targets pass through the same delay line; the MuJoCo model and data mirror PyBullet's state after every physics
    step, so `state()` builds the RobotState with the same code, with the accelerometer, foot contacts and joint
    torques taken from PyBullet.
    """

    backend = "pybullet"
    _bsens: np.ndarray | None = None
    """PyBullet's sensordata of the last physics step (None until PyBullet exists, during SimRobot.__init__)."""

    def __init__(self, robot: str, params: dict[str, Any] | None = None, **kwargs: Any) -> None:
        super().__init__(robot, params=params, **kwargs)
        import importlib

        module = importlib.import_module(f"robot_rl.sim.robots.{robot}.model")
        self._bullet = BulletEngine(EngineRequest(self.nominal, str(module.urdf_path()), 1, 1))
        nstate = mujoco.mj_stateSize(self.model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
        self._row = np.zeros((1, nstate))
        self._out = np.zeros((1, 1, nstate))
        self._bsens = np.zeros((1, 1, self.model.nsensordata))

    def step(self, targets: np.ndarray, n: int = 1) -> Any:
        full = mujoco.mjtState.mjSTATE_FULLPHYSICS
        q_des = np.asarray(targets, float)
        sens = self._bsens
        assert sens is not None  # set in __init__
        for _ in range(n):
            ctrl = np.asarray(self._delay.push(q_des), float).reshape(1, 1, -1)
            mujoco.mj_getState(self.model, self.data, self._row[0], full)
            self._bullet.step([self.model], self._row, ctrl, self._out, sens)
            mujoco.mj_setState(self.model, self.data, self._out[0, -1], full)
        return self.state()

    def state(self) -> Any:
        s = super().state()
        if self._bsens is None:
            return s  # during SimRobot.__init__, before PyBullet exists
        sens = self._bsens[0, -1]
        s.base_lin_acc = sens[self._s["imu_acc"]].copy()
        s.contacts = sens[self._s_feet] > 1.0
        s.joint_effort = sens[self._s_torque].copy()
        return s

    def sensordata(self) -> np.ndarray:
        sens = self._bsens
        assert sens is not None  # set in __init__
        return sens[0, -1]  # PyBullet's contacts and torques, not MuJoCo's of the mirrored state

    def close(self) -> None:
        self._bullet.close()


register_engine("pybullet", BulletEngine, robot_sim=BulletSimRobot)
