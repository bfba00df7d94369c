"""Franka Emika Panda for MuJoCo, built at run time with MjSpec from the URDF that `pybullet_data` ships, so MuJoCo
and PyBullet simulate the same kinematics, inertias and collision meshes.

The URDF's meshes are `package://meshes/...`; the builder points them at the pybullet_data folder (nothing is
copied) and raises AssetError naming any file that is missing. Added here: a table, a cube (`object`, free joint),
a goal marker (`goal`, mocap body), an `ee` site at the grasp point, PD actuators realising controllers.pd_torque
with the URDF effort limits on the seven arm joints and on finger 1 (finger 2 follows through the URDF's `mimic`,
which MuJoCo imports as a joint equality), and gravity compensation of the arm (`gravcomp`), as the Panda's own
firmware compensates gravity under its torque interface.

Only the hand, the fingers, the cube and the table collide (arm links are visual-only), which keeps the contact
count small; the same filter is applied in PyBullet.
"""

from __future__ import annotations

import re
from pathlib import Path

import mujoco
import numpy as np

from robot_rl.errors import AssetError
from robot_rl.sim import mjmodel
from robot_rl.sim.manipulation import compile_with_home, finish_arm_spec
from robot_rl.sim.mjmodel import pybullet_data_urdf, read_urdf, set_physics, spec_from_urdf

ARM_JOINTS = [f"panda_joint{i}" for i in range(1, 8)]
GRIPPER_JOINT = "panda_finger_joint1"
JOINT_NAMES = [*ARM_JOINTS, GRIPPER_JOINT]
"""Contract order: the seven arm joints from the base, then the actuated finger."""
HOME = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785, 0.04])
"""Home pose (franka_ros 'ready'), fingers open."""
LOW_POSE = (0.0, 0.102, 0.0, -2.664, 0.0, 2.766, 0.785)
"""Arm pose with the grasp point 10 cm above the table at x = 0.42 m, hand pointing down (push, pick-and-place)."""
KP = np.array([600.0, 600.0, 600.0, 600.0, 250.0, 150.0, 50.0, 500.0])
"""Joint stiffness [N m/rad, N/m]: franka_ros joint impedance example; finger 500 N/m."""
KD = np.array([50.0, 50.0, 50.0, 20.0, 20.0, 20.0, 10.0, 5.0])
"""Joint damping gains [N m s/rad, N s/m]."""
COLLIDING = ("panda_hand", "panda_leftfinger", "panda_rightfinger")
MIMIC_JOINT = "panda_finger_joint2"


def urdf_path() -> Path:
    return pybullet_data_urdf("Panda", "franka_panda/panda.urdf")


def urdf_limits(path: Path | None = None) -> tuple[np.ndarray, np.ndarray]:
    """(effort, velocity) limits of JOINT_NAMES as the URDF states them."""
    return mjmodel.urdf_limits("Panda", path or urdf_path(), JOINT_NAMES)


def _resolve_meshes(text: str, folder: Path, path: Path) -> str:
    """Replace `package://` mesh paths by absolute ones inside `folder`; AssetError naming a missing file."""

    def fix(m: re.Match[str]) -> str:
        target = folder / m.group(1)
        if not target.is_file():
            raise AssetError(f"{path}: mesh {target} not found")
        return f'filename="{target}"'

    return re.sub(r'filename="package://([^"]+)"', fix, text)


def build_spec(physics_dt: float = 0.005, kp: np.ndarray = KP, kd: np.ndarray = KD,
               urdf: Path | None = None) -> mujoco.MjSpec:
    """Panda + table + cube + goal marker as an editable MjSpec."""
    path = urdf if urdf is not None else urdf_path()
    text = _resolve_meshes(read_urdf("Panda", path), path.parent, path)
    ext = '<mujoco><compiler strippath="false" discardvisual="true" fusestatic="false"/></mujoco>'
    spec = spec_from_urdf(path, text, ext)
    set_physics(spec, "panda", physics_dt, iterations=20)
    effort, _ = urdf_limits(path)

    for g in spec.geoms:
        if g.parent.name in COLLIDING:
            g.contype, g.conaffinity, g.condim = 2, 1, 3
            g.friction[0] = 1.0
        else:
            g.contype = g.conaffinity = 0
    for b in spec.bodies:
        if b.name.startswith("panda_") and b.name != "panda_link0":
            b.gravcomp = 1.0
    finish_arm_spec(spec, "panda_grasptarget", (0.0, 0.0, 0.0), JOINT_NAMES, kp, kd, effort)
    return spec


def build_model(physics_dt: float = 0.005, kp: np.ndarray = KP, kd: np.ndarray = KD) -> mujoco.MjModel:
    """Compiled scene with a `home` keyframe (HOME pose, cube resting at (0.5, 0), targets at HOME)."""
    home = dict(zip(JOINT_NAMES, HOME)) | {MIMIC_JOINT: HOME[-1]}
    return compile_with_home(build_spec(physics_dt, kp, kd), home, HOME)
