"""One simulated robot at physics rate: the ROS 2 simulated-robot node and system identification drive it.

It shares the model builder and the actuator law with the vectorized environment: MuJoCo actuators realise
controllers.pd_torque, and controllers.DelayLine supplies the latency, one push per physics step.
"""

from __future__ import annotations

import copy
import dataclasses
from typing import Any

import mujoco
import numpy as np

from robot_rl.controllers import DelayLine
from robot_rl.errors import ConfigError
from robot_rl.sim.locomotion import ControlConfig, LeggedRandomizationConfig
from robot_rl.sim.mjmodel import FLOOR, SensorSlices, joint_gains
from robot_rl.sim.randomization import EpisodeParams, ModelIds, apply_to_model, write_gains
from robot_rl.sim.registry import get_robot
from robot_rl.state import RobotState

PARAM_KEYS = ("friction", "added_mass", "com_offset", "motor_strength", "kp_scale", "kd_scale", "latency")


class SimRobot:
    """A single MuJoCo robot with held PD targets; `state()` reads the IMU and contacts from sensors."""

    def __init__(self, robot: str, params: dict[str, Any] | None = None, physics_dt: float = 0.005,
                 kp: float | None = None, kd: float | None = None) -> None:
        base = ControlConfig()
        control = dataclasses.replace(base, physics_dt=physics_dt, policy_dt=physics_dt,
                                      kp=base.kp if kp is None else kp, kd=base.kd if kd is None else kd)
        self.robot = get_robot(robot).make_robot()
        self.joint_names: list[str] = list(self.robot.joint_names)
        self.physics_dt = physics_dt
        self.nominal = self.robot.build_model(control)
        self.model = copy.copy(self.nominal)
        self.data = mujoco.MjData(self.model)
        n = len(self.joint_names)
        self.kp, self.kd = np.full(n, control.kp), np.full(n, control.kd)
        self.torque_limit = np.asarray(self.robot.torque_limit, float)
        self._ids = ModelIds.lookup(self.model, floor=FLOOR, base=self.robot.base_body)
        self._params = EpisodeParams.nominal(LeggedRandomizationConfig(), 1, n)
        self._delay = DelayLine(n, 0)
        sl = SensorSlices.of(self.model)
        self._s = {k: sl.slices[k] for k in ("imu_quat", "imu_gyro", "imu_acc", "imu_vel")}
        self._s_feet = sl.columns([f"{f}_touch" for f in self.robot.feet])
        self._s_torque = sl.columns([f"{j}_torque" for j in self.joint_names])
        m = self.model
        self._jq = np.array([m.jnt_qposadr[m.joint(j).id] for j in self.joint_names])
        self._jv = np.array([m.jnt_dofadr[m.joint(j).id] for j in self.joint_names])
        self._renderer: mujoco.Renderer | None = None
        if params:
            self.apply_params(params)
        self.reset()

    def reset(self, seed: int | None = None) -> RobotState:
        """Home pose (default joint positions, feet on the ground), targets held at the default pose.

        The reset is deterministic; `seed` is accepted for API symmetry with the environments.
        """
        mujoco.mj_resetDataKeyframe(self.model, self.data, self.model.key("home").id)
        self._delay.reset()
        self.data.ctrl[:] = self.model.key("home").ctrl
        mujoco.mj_forward(self.model, self.data)
        return self.state()

    def set_pd(self, kp: np.ndarray | float, kd: np.ndarray | float) -> None:
        """New gains on every joint (kp = 0: damping mode, the e-stop backup)."""
        self.kp, self.kd = joint_gains(kp, kd, len(self.joint_names))
        p = self._params
        write_gains(self.model, p, 0, self.kp, self.kd, self.torque_limit)

    def apply_params(self, params: dict[str, Any]) -> None:
        """Physical parameters (randomization values or identified ones): friction, added_mass, com_offset (3),
        motor_strength, kp_scale, kd_scale, latency (physics steps). Unknown keys are a ConfigError."""
        unknown = sorted(set(params) - set(PARAM_KEYS))
        if unknown:
            raise ConfigError(f"unknown robot parameter {unknown[0]} (valid: {', '.join(PARAM_KEYS)})")
        p = self._params
        for key, value in params.items():
            if key == "latency":
                if int(value) < 0:
                    raise ConfigError("latency must be >= 0 physics steps")
                p["latency_steps"][0] = int(value)
                self._delay = DelayLine(len(self.joint_names), int(value))
            elif key == "com_offset":
                p["com_offset"][0] = np.broadcast_to(np.asarray(value, float), (3,))
            else:
                p[key][0] = float(value)
        apply_to_model(self.model, self.nominal, self._ids, p, 0, self.kp, self.kd, self.torque_limit,
                       mujoco.MjData(self.model))

    def step(self, targets: np.ndarray, n: int = 1) -> RobotState:
        """Hold joint position targets for n physics steps (through the delay line); returns the new state."""
        q_des = np.asarray(targets, float)
        for _ in range(n):
            self.data.ctrl[:] = self._delay.push(q_des)
            mujoco.mj_step(self.model, self.data)
        return self.state()

    def state(self) -> RobotState:
        """RobotState with IMU fields from the sensors, evaluated at the current state (mj_forward)."""
        m, d = self.model, self.data
        mujoco.mj_forward(m, d)
        sd = d.sensordata
        return RobotState(joint_pos=d.qpos[self._jq].copy(), joint_vel=d.qvel[self._jv].copy(),
                          base_quat=sd[self._s["imu_quat"]].copy(), base_ang_vel=sd[self._s["imu_gyro"]].copy(),
                          base_lin_acc=sd[self._s["imu_acc"]].copy(), timestamp=float(d.time),
                          base_lin_vel=sd[self._s["imu_vel"]].copy(), base_pos=d.qpos[0:3].copy(),
                          contacts=sd[self._s_feet] > 1.0, joint_effort=sd[self._s_torque].copy())

    def sensordata(self) -> np.ndarray:
        """The engine's sensor readings (MuJoCo's sensordata layout) at the state `state()` last returned."""
        return self.data.sensordata

    def render(self, width: int = 640, height: int = 480) -> np.ndarray:
        if self._renderer is None or (self._renderer.width, self._renderer.height) != (width, height):
            self._renderer = mujoco.Renderer(self.model, height=height, width=width)
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        cam.trackbodyid = self._ids.base_body
        cam.distance, cam.azimuth, cam.elevation = 1.5, 135.0, -20.0
        self._renderer.update_scene(self.data, camera=cam)
        return self._renderer.render()
