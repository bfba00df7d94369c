"""MuJoCo model helpers shared by every robot: ground plane, PD actuators compiled from the controllers' law, IMU and
contact sensors, ids looked up by name (never hard-coded), and reading robots from URDF files."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from robot_rl.controllers import actuator_coefficients
from robot_rl.errors import AssetError

FLOOR = "floor"
IMU_SITE = "imu"


def add_floor(spec: mujoco.MjSpec, friction: float = 1.0) -> None:
    """Infinite plane with priority 1, so its friction (the randomized one) decides every foot contact."""
    tex = spec.add_texture(name="grid", type=mujoco.mjtTexture.mjTEXTURE_2D,
                           builtin=mujoco.mjtBuiltin.mjBUILTIN_CHECKER,
                           rgb1=[0.2, 0.3, 0.4], rgb2=[0.1, 0.2, 0.3], width=512, height=512)
    mat = spec.add_material(name="grid", texrepeat=[8, 8], reflectance=0.1)
    mat.textures[mujoco.mjtTextureRole.mjTEXROLE_RGB] = tex.name
    spec.worldbody.add_geom(name=FLOOR, type=mujoco.mjtGeom.mjGEOM_PLANE, size=[0, 0, 0.05], material="grid",
                            friction=[friction, 0.005, 0.0001], priority=1, contype=1, conaffinity=1, condim=3)
    spec.worldbody.add_light(pos=[0, 0, 3], dir=[0, 0, -1], diffuse=[0.8, 0.8, 0.8], castshadow=False)


def add_pd_actuators(spec: mujoco.MjSpec, joints: Sequence[str], kp: np.ndarray, kd: np.ndarray,
                     torque_limit: np.ndarray) -> None:
    """One `general` actuator per joint realising controllers.pd_torque (ctrl = position target)."""
    gain, bias, frange = actuator_coefficients(np.asarray(kp), np.asarray(kd), np.ones(len(joints)),
                                               np.asarray(torque_limit))
    for i, name in enumerate(joints):
        act = spec.add_actuator(name=name, target=name, trntype=mujoco.mjtTrn.mjTRN_JOINT)
        act.gaintype = mujoco.mjtGain.mjGAIN_FIXED
        act.biastype = mujoco.mjtBias.mjBIAS_AFFINE
        act.gainprm[0] = gain[i]
        act.biasprm[0:3] = bias[i]
        act.forcelimited = mujoco.mjtLimited.mjLIMITED_TRUE
        act.forcerange = frange[i]
        act.ctrllimited = mujoco.mjtLimited.mjLIMITED_FALSE


def joint_gains(kp: np.ndarray | float, kd: np.ndarray | float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """kp and kd as fresh (n,) arrays (a scalar sets every joint): what a simulated robot's `set_pd` stores."""
    return np.broadcast_to(np.asarray(kp, float), (n,)).copy(), np.broadcast_to(np.asarray(kd, float), (n,)).copy()


def write_pd(model: mujoco.MjModel, kp: np.ndarray, kd: np.ndarray, strength: np.ndarray | float,
             torque_limit: np.ndarray) -> None:
    """Overwrite the actuator law in a compiled model (gain scale, strength, damping mode) without recompiling."""
    gain, bias, frange = actuator_coefficients(kp, kd, strength, torque_limit)
    model.actuator_gainprm[:, 0] = gain
    model.actuator_biasprm[:, 0:3] = bias
    model.actuator_forcerange[:] = frange


def name_ids(model: mujoco.MjModel, objtype: mujoco.mjtObj, names: Sequence[str]) -> np.ndarray:
    """Ids of named objects; a missing name is an AssetError naming it (a model/task mismatch, not a KeyError)."""
    ids = []
    for n in names:
        i = mujoco.mj_name2id(model, objtype, n)
        if i < 0:
            raise AssetError(f"model has no {objtype.name[6:].lower()} named '{n}'")
        ids.append(i)
    return np.asarray(ids, dtype=np.int64)


def as_slice(index: np.ndarray) -> slice | np.ndarray:
    """A run of consecutive indices as a slice (indexing with it gives a view, not a copy), anything else as is."""
    index = np.asarray(index)
    if index.ndim == 1 and index.size > 0 and np.all(np.diff(index) == 1):
        return slice(int(index[0]), int(index[-1]) + 1)
    return index


@dataclass(frozen=True)
class SensorSlices:
    """Where each named sensor lives in `sensordata` (looked up once, used every step)."""

    slices: dict[str, slice]

    @classmethod
    def of(cls, model: mujoco.MjModel) -> SensorSlices:
        out = {}
        for i in range(model.nsensor):
            adr, dim = int(model.sensor_adr[i]), int(model.sensor_dim[i])
            out[model.sensor(i).name] = slice(adr, adr + dim)
        return cls(out)

    def columns(self, names: Sequence[str]) -> np.ndarray:
        """Sensordata columns of several scalar sensors (e.g. four foot touch sensors)."""
        try:
            return np.asarray([self.slices[n].start for n in names], dtype=np.int64)
        except KeyError as exc:
            raise AssetError(f"model has no sensor named {exc}") from None


def state_layout(model: mujoco.MjModel) -> tuple[int, int, int]:
    """(nstate, qpos offset, qvel offset) of mjSTATE_FULLPHYSICS vectors: [time, qpos, qvel, act, ...]."""
    nstate = mujoco.mj_stateSize(model, mujoco.mjtState.mjSTATE_FULLPHYSICS)
    return nstate, 1, 1 + model.nq


def set_physics(spec: mujoco.MjSpec, name: str, physics_dt: float, iterations: int) -> None:
    """Options every robot model shares: implicit-fast integration at the contract's physics step, a bounded solver
    effort (speed on CPU), and an offscreen buffer large enough for the run videos."""
    spec.modelname = name
    opt = spec.option
    opt.timestep = physics_dt
    opt.integrator = mujoco.mjtIntegrator.mjINT_IMPLICITFAST
    opt.iterations = iterations
    opt.ls_iterations = 10
    spec.visual.global_.offwidth = 1280
    spec.visual.global_.offheight = 720


# ---- robots built from URDF ------------------------------------------------------------------------------------
def pybullet_data_urdf(robot: str, relpath: str) -> Path:
    """A URDF that pybullet_data ships; AssetError naming the file when pybullet or the file is missing."""
    try:
        import pybullet_data
    except ImportError:
        raise AssetError(f"{robot} model needs pybullet_data (pip install pybullet): {relpath} not found") from None
    path = Path(pybullet_data.getDataPath()) / relpath
    if not path.is_file():
        raise AssetError(f"{robot} URDF not found: {path}")
    return path


def read_urdf(robot: str, path: Path) -> str:
    try:
        return path.read_text()
    except OSError as exc:
        raise AssetError(f"cannot read {robot} URDF {path}: {exc.strerror}") from None


def spec_from_urdf(path: Path, text: str, insert: str) -> mujoco.MjSpec:
    """Parse URDF `text` (read from `path`) with MuJoCo, `insert` (MuJoCo compiler options, extra links) placed
    right after the <robot> element opens; AssetError naming the file when it has none or MuJoCo refuses it."""
    text, count = re.subn(r"(<robot[^>]*>)", lambda m: m.group(1) + insert, text, count=1)
    if count != 1:
        raise AssetError(f"{path}: no <robot> element")
    try:
        return mujoco.MjSpec.from_string(text)
    except ValueError as exc:
        raise AssetError(f"{path}: MuJoCo cannot parse it ({exc})") from None


def urdf_limits(robot: str, path: Path, joint_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    """(effort, velocity) limits of `joint_names` as the URDF states them."""
    import xml.etree.ElementTree as ET

    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise AssetError(f"cannot read {robot} URDF {path}: {exc}") from None
    limits = {j.get("name"): j.find("limit") for j in root.findall("joint")}
    try:
        effort = [float(limits[n].get("effort", "")) for n in joint_names]  # type: ignore[union-attr]
        vel = [float(limits[n].get("velocity", "")) for n in joint_names]  # type: ignore[union-attr]
    except (KeyError, AttributeError, ValueError):
        raise AssetError(f"{path}: missing a <limit> of {', '.join(joint_names)}") from None
    return np.array(effort), np.array(vel)
