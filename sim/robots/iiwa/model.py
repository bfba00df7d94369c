"""KUKA LBR iiwa 14 for MuJoCo, built at run time with MjSpec from the URDF that `pybullet_data` ships
(kuka_iiwa/model.urdf), so MuJoCo and PyBullet simulate the same kinematics and inertias.

Added here: an `ee` site 5 cm beyond the flange of link 7, the tabletop scene every arm model provides
(robot_rl.sim.manipulation.add_tabletop), PD actuators realising controllers.pd_torque with the URDF effort limits,
and gravity compensation of every link (the iiwa's own controller compensates gravity). The arm has no gripper and
no link collides (reaching only); the same filter is applied in PyBullet.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from robot_rl.sim import mjmodel
from robot_rl.sim.manipulation import compile_with_home, finish_arm_spec
from robot_rl.sim.mjmodel import pybullet_data_urdf, read_urdf, set_physics, spec_from_urdf

JOINT_NAMES = [f"lbr_iiwa_joint_{i}" for i in range(1, 8)]
"""Contract order: the seven joints from the base."""
HOME = np.array([0.0, 0.5, 0.0, -1.4, 0.0, 1.25, 0.0])
"""Home pose: the grasp point 0.58 m in front of the base, 0.47 m above the table, pointing down."""
KP = np.array([600.0, 600.0, 400.0, 400.0, 150.0, 100.0, 50.0])
"""Joint stiffness [N m/rad], decreasing towards the wrist with the inertia each joint moves."""
KD = np.array([50.0, 50.0, 30.0, 30.0, 4.0, 2.0, 0.2])
"""Joint damping gains [N m s/rad]. The wrist links are light (link 7: 0.001 kg m^2 about its axis): PyBullet
integrates damping explicitly, stable while (kd + the URDF's 0.5 joint damping) * dt / I < 2 at its 400 Hz."""
FLANGE = "lbr_iiwa_link_7"


def urdf_path() -> Path:
    return pybullet_data_urdf("iiwa", "kuka_iiwa/model.urdf")


def urdf_limits(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(effort, velocity) limits of JOINT_NAMES as the URDF states them."""
    return mjmodel.urdf_limits("iiwa", path or urdf_path(), JOINT_NAMES)


def build_spec(physics_dt: float = 0.005, kp: np.ndarray = KP, kd: np.ndarray = KD,
               urdf: Path | None = None) -> mujoco.MjSpec:
    """iiwa + table + cube + goal marker as an editable MjSpec."""
    path = urdf if urdf is not None else urdf_path()
    # URDF import drops visual-only geoms by default; every iiwa geom is visual-only here (nothing collides)
    ext = '<mujoco><compiler discardvisual="false" fusestatic="false"/></mujoco>'
    spec = spec_from_urdf(path, read_urdf("iiwa", path), ext)
    spec.meshdir = str(path.parent)
    set_physics(spec, "iiwa", physics_dt, iterations=20)
    effort, _ = urdf_limits(path)
    for g in spec.geoms:
        g.contype = g.conaffinity = 0  # reaching only: no link collides (their meshes stay for rendering)
    for b in spec.bodies:
        if b.name.startswith("lbr_iiwa_link_") and b.name != "lbr_iiwa_link_0":
            b.gravcomp = 1.0
    finish_arm_spec(spec, FLANGE, (0.0, 0.0, 0.05), JOINT_NAMES, kp, kd, effort)
    return spec


def build_model(physics_dt: float = 0.005, kp: np.ndarray = KP, kd: np.ndarray = KD) -> mujoco.MjModel:
    """Compiled scene with a `home` keyframe (HOME pose, cube resting at (0.5, 0), targets at HOME)."""
    return compile_with_home(build_spec(physics_dt, kp, kd), dict(zip(JOINT_NAMES, HOME)), HOME)
