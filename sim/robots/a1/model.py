"""Unitree A1 for MuJoCo, built at run time with MjSpec from the A1 URDF that `pybullet_data` ships, so MuJoCo and
PyBullet simulate the same kinematics and inertias.

What the URDF lacks is added here: a floating base (a `floating` URDF joint, imported as a MuJoCo freejoint), the
ground, PD actuators, IMU and contact sensors, joint armature/damping, and cheap collision geometry.

Drive limits are the real A1's, not the URDF's: the pybullet_data URDF says 20 N m (hip) / 55 N m (thigh, calf) and
52.4 / 28.6 rad/s, while Unitree's A1 datasheet and its `a1_description` (unitree_ros) give 33.5 N m and 21 rad/s for
every joint. A policy trained with 55 N m calves would ask the real motors for torque they do not have.
"""

from __future__ import annotations

from pathlib import Path

import mujoco
import numpy as np

from robot_rl.sim.mjmodel import (
    IMU_SITE,
    add_floor,
    add_pd_actuators,
    pybullet_data_urdf,
    read_urdf,
    set_physics,
    spec_from_urdf,
)

LEGS = ("FR", "FL", "RR", "RL")
"""Unitree SDK / URDF leg order; the contract joint order follows it so that deployment needs no reindexing."""
JOINT_NAMES = [f"{leg}_{part}_joint" for leg in LEGS for part in ("hip", "upper", "lower")]
TORQUE_LIMIT = 33.5
"""N m, every joint (Unitree A1 datasheet, unitree_ros a1_description)."""
VELOCITY_LIMIT = 21.0
"""rad/s, every joint (unitree_ros a1_description)."""
DEFAULT_POSE = {"hip": {"FR": -0.1, "FL": 0.1, "RR": -0.1, "RL": 0.1},
                "upper": {"FR": 0.8, "FL": 0.8, "RR": 1.0, "RL": 1.0},
                "lower": {"FR": -1.5, "FL": -1.5, "RR": -1.5, "RL": -1.5}}
"""Standing pose of legged_gym's A1 config (hip, thigh, calf)."""
ARMATURE = 0.01
"""kg m^2 reflected rotor inertia per joint; also stabilises the light calf links at 200 Hz."""
DAMPING = 0.01
"""N m s / rad passive joint damping (the PD kd dominates)."""
FOOT_RADIUS = 0.02
TRUNK = "trunk"
FEET = [f"{leg}_foot" for leg in LEGS]
THIGHS = [f"{leg}_thigh" for leg in LEGS]
CALVES = [f"{leg}_calf" for leg in LEGS]


def default_joint_pos() -> np.ndarray:
    return np.array([DEFAULT_POSE[j.split("_")[1]][j.split("_")[0]] for j in JOINT_NAMES])


def urdf_path() -> Path:
    """The A1 URDF inside pybullet_data; AssetError naming the file when pybullet or the file is missing."""
    return pybullet_data_urdf("A1", "a1/a1.urdf")


_FLOATING = ('<mujoco><compiler discardvisual="false" fusestatic="true" balanceinertia="true"/></mujoco>'
             '<link name="world"/><joint name="floating_base" type="floating">'
             '<parent link="world"/><child link="trunk"/></joint>')


def build_spec(physics_dt: float = 0.005, kp: float = 20.0, kd: float = 0.5, urdf: Path | None = None) -> mujoco.MjSpec:
    """The A1 as an editable MjSpec (compile it, or edit further before compiling)."""
    path = urdf if urdf is not None else urdf_path()
    spec = spec_from_urdf(path, read_urdf("A1", path), _FLOATING)
    spec.meshdir = str(path.parent)
    set_physics(spec, "a1", physics_dt, iterations=10)

    _cheap_collisions(spec)
    add_floor(spec)
    for j in spec.joints:
        if j.name in JOINT_NAMES:
            j.armature = ARMATURE
            j.damping[0] = DAMPING
    _add_sensors(spec)
    add_pd_actuators(spec, JOINT_NAMES, np.full(12, kp), np.full(12, kd), np.full(12, TORQUE_LIMIT))
    return spec


def _cheap_collisions(spec: mujoco.MjSpec) -> None:
    """Keep only trunk box, thigh/calf boxes and foot spheres colliding, with the floor only (no self-collision).

    The toe link is still its own body in the spec (fused into the calf at compile time).
    Robot geoms get contype 2 / conaffinity 1 and the floor 1 / 1: robot-floor pairs collide, robot-robot pairs do
    not. Hip cylinders and the 1 mm IMU box are made visual-only.
    """
    for g in spec.geoms:
        if g.contype == 0 and g.conaffinity == 0:
            continue  # visual mesh
        body = g.parent.name
        leg = body.split("_")[0]
        name = ""
        if body == TRUNK and g.type == mujoco.mjtGeom.mjGEOM_BOX and g.size[0] > 0.01:
            name = "trunk_collision"
        elif body.endswith("_upper") and g.type == mujoco.mjtGeom.mjGEOM_BOX:
            name = f"{leg}_thigh"
        elif body.endswith("_lower") and g.type == mujoco.mjtGeom.mjGEOM_BOX:
            name = f"{leg}_calf"
            # URDF box reaches the foot centre; shortened so a standing foot does not also touch with its shin.
            g.size[0], g.pos[2] = 0.08, -0.09
        elif body.endswith("_toe") and g.type == mujoco.mjtGeom.mjGEOM_SPHERE:
            name = f"{leg}_foot"
            g.condim = 3
        if name:
            g.name = name
            g.contype, g.conaffinity = 2, 1
            g.group = 3
        else:
            g.contype = g.conaffinity = 0
            g.group = 4


def _add_sensors(spec: mujoco.MjSpec) -> None:
    """IMU (orientation, gyro, accelerometer, velocimeter) on the trunk origin; touch sites on feet, thighs, calves
    and trunk for contact detection (touch reads the normal force of contacts inside the site volume)."""
    trunk = spec.body(TRUNK)
    trunk.add_site(name=IMU_SITE, pos=[0, 0, 0], size=[0.01, 0.01, 0.01])
    trunk.add_site(name="trunk_touch", type=mujoco.mjtGeom.mjGEOM_BOX, size=[0.1435, 0.107, 0.067], group=5)
    obj = mujoco.mjtObj.mjOBJ_SITE
    spec.add_sensor(name="imu_quat", type=mujoco.mjtSensor.mjSENS_FRAMEQUAT, objtype=obj, objname=IMU_SITE)
    spec.add_sensor(name="imu_gyro", type=mujoco.mjtSensor.mjSENS_GYRO, objtype=obj, objname=IMU_SITE)
    spec.add_sensor(name="imu_acc", type=mujoco.mjtSensor.mjSENS_ACCELEROMETER, objtype=obj, objname=IMU_SITE)
    spec.add_sensor(name="imu_vel", type=mujoco.mjtSensor.mjSENS_VELOCIMETER, objtype=obj, objname=IMU_SITE)
    spec.add_sensor(name="trunk_touch", type=mujoco.mjtSensor.mjSENS_TOUCH, objtype=obj, objname="trunk_touch")
    for leg in LEGS:
        upper, lower = spec.body(f"{leg}_upper"), spec.body(f"{leg}_lower")
        spec.body(f"{leg}_toe").add_site(name=f"{leg}_foot", size=[FOOT_RADIUS * 1.5, 0, 0], group=5)
        upper.add_site(name=f"{leg}_thigh", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[0, 0, -0.1],
                       size=[0.02, 0.02, 0.11], group=5)
        lower.add_site(name=f"{leg}_calf", type=mujoco.mjtGeom.mjGEOM_BOX, pos=[0, 0, -0.1],
                       size=[0.016, 0.016, 0.09], group=5)
        for part in ("foot", "thigh", "calf"):
            spec.add_sensor(name=f"{leg}_{part}_touch", type=mujoco.mjtSensor.mjSENS_TOUCH, objtype=obj,
                            objname=f"{leg}_{part}")
    for j in JOINT_NAMES:
        spec.add_sensor(name=f"{j}_torque", type=mujoco.mjtSensor.mjSENS_ACTUATORFRC,
                        objtype=mujoco.mjtObj.mjOBJ_ACTUATOR, objname=j)


def standing_height(model: mujoco.MjModel, q: np.ndarray | None = None) -> float:
    """Base height at which the feet touch the ground in pose `q` (default pose when None)."""
    data = mujoco.MjData(model)
    data.qpos[3] = 1.0
    data.qpos[7:19] = default_joint_pos() if q is None else q
    mujoco.mj_kinematics(model, data)
    feet = [model.site(f"{leg}_foot").id for leg in LEGS]
    return float(-data.site_xpos[feet, 2].min() + FOOT_RADIUS)


def build_model(physics_dt: float = 0.005, kp: float = 20.0, kd: float = 0.5) -> mujoco.MjModel:
    """Compiled A1 with a `home` keyframe: default pose, feet on the ground."""
    spec = build_spec(physics_dt, kp, kd)
    model = spec.compile()
    z = standing_height(model)
    qpos = np.concatenate([[0, 0, z, 1, 0, 0, 0], default_joint_pos()])
    spec.add_key(name="home", qpos=qpos, ctrl=default_joint_pos())
    return spec.compile()
