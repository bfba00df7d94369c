"""KUKA LBR iiwa 14 for MuJoCo, built at run time with MjSpec from the URDF that `pybullet_data` ships
(kuka_iiwa/model.urdf), so MuJoCo and PyBullet simulate the same kinematics and inertias.

Added here: an `ee` site 5 cm beyond the flange of link 7, the tabletop scene every arm model provides
(robot_rl.sim.manipulation.add_tabletop), PD actuators realising controllers.pd_torque with the URDF effort limits,
and gravity compensation of every link (the iiwa's own controller compensates gravity). The arm has no gripper and
no link collides (reaching only); the same filter is applied in PyBullet.
"""

from __future__ import annotations

import re
from pathlib import Path

import mujoco
import numpy as np

from robot_rl.errors import AssetError
from robot_rl.sim.manipulation import CUBE_HALF, OBJECT, add_tabletop
from robot_rl.sim.mjmodel import add_pd_actuators, set_physics

JOINT_NAMES = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
"""Contract order: the seven joints from the base."""
HOME = np.array([0.0, 0.5, 0.0, -1.4, 0.0, 1.25, 0.0])
"""Home pose: the grasp point 0.58 m in front of the base, 0.47 m above the table, pointing down."""
KP = np.array([600.0, 600.0, 400.0, 400.0, 150.0, 100.0, 50.0])
"""Joint stiffness [N m/rad], decreasing towards the wrist with the inertia each joint moves."""
KD = np.array([50.0, 50.0, 30.0, 30.0, 4.0, 2.0, 0.2])
"""Joint damping gains [N m s/rad]. The wrist links are light (link 7: 0.001 kg m^2 about its axis): PyBullet
integrates damping explicitly, stable while (kd + the URDF's 0.5 joint damping) * dt / I < 2 at its 400 Hz."""
EE_SITE = "ee"
FLANGE = "lbr_iiwa_link_7"


def urdf_path() -> Path:
    try:
        import pybullet_data
    except ImportError:
        raise AssetError("iiwa model needs pybullet_data (pip install pybullet): kuka_iiwa/model.urdf "
                         "not found") from None
    path = Path(pybullet_data.getDataPath()) / "kuka_iiwa" / "model.urdf"
    if not path.is_file():
        raise AssetError(f"iiwa URDF not found: {path}")
    return path


def urdf_limits(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(effort, velocity) limits of JOINT_NAMES as the URDF states them."""
    import xml.etree.ElementTree as ET

    path = path or urdf_path()
    try:
        root = ET.parse(path).getroot()
    except (OSError, ET.ParseError) as exc:
        raise AssetError(f"cannot read iiwa URDF {path}: {exc}") from None
    limits = {j.get("name"): j.find("limit") for j in root.findall("joint")}
    try:
        effort = [float(limits[n].get("effort", "")) for n in JOINT_NAMES]  # type: ignore[union-attr]
        vel = [float(limits[n].get("velocity", "")) for n in JOINT_NAMES]  # type: ignore[union-attr]
    except (KeyError, AttributeError, ValueError):
        raise AssetError(f"{path}: missing a <limit> of {', '.join(JOINT_NAMES)}") from None
    return np.array(effort), np.array(vel)


def build_spec(physics_dt: float = 0.005, kp: np.ndarray = KP, kd: np.ndarray = KD,
               urdf: Path | None = None) -> mujoco.MjSpec:
    """iiwa + table + cube + goal marker as an editable MjSpec."""
    path = urdf if urdf is not None else urdf_path()
    try:
        text = path.read_text()
    except OSError as exc:
        raise AssetError(f"cannot read iiwa URDF {path}: {exc.strerror}") from None
    ext = '<mujoco><compiler fusestatic="false"/></mujoco>'
    text, count = re.subn(r"(<robot[^>]*>)", lambda m: m.group(1) + ext, text, count=1)
    if count != 1:
        raise AssetError(f"{path}: no <robot> element")
    try:
        spec = mujoco.MjSpec.from_string(text)
    except ValueError as exc:
        raise AssetError(f"{path}: MuJoCo cannot parse it ({exc})") from None
    spec.meshdir = str(path.parent)
    set_physics(spec, "iiwa", physics_dt, iterations=20)
    effort, _ = urdf_limits(path)
    for g in spec.geoms:
        g.contype = g.conaffinity = 0  # reaching only: no link collides (their meshes stay for rendering)
    for b in spec.bodies:
        if b.name.startswith("lbr_iiwa_link_") and b.name != "lbr_iiwa_link_0":
            b.gravcomp = 1.0
    spec.body(FLANGE).add_site(name=EE_SITE, pos=[0.0, 0.0, 0.05], size=[0.01, 0, 0], rgba=[1, 0, 0, 0.5])
    add_tabletop(spec)
    add_pd_actuators(spec, JOINT_NAMES, np.asarray(kp, float), np.asarray(kd, float), effort)
    return spec


def build_model(physics_dt: float = 0.005, kp: np.ndarray = KP, kd: np.ndarray = KD) -> mujoco.MjModel:
    """Compiled scene with a `home` keyframe (HOME pose, cube resting at (0.5, 0), targets at HOME)."""
    spec = build_spec(physics_dt, kp, kd)
    model = spec.compile()
    qpos = np.zeros(model.nq)
    for name, value in zip(JOINT_NAMES, HOME):
        qpos[model.jnt_qposadr[model.joint(name).id]] = value
    adr = model.jnt_qposadr[model.joint(OBJECT).id]
    qpos[adr:adr + 7] = [0.5, 0.0, CUBE_HALF, 1, 0, 0, 0]
    spec.add_key(name="home", qpos=qpos, ctrl=HOME)
    return spec.compile()
