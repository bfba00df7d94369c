"""One arm task's scene at physics rate with held joint targets: the ROS 2 simulated robot of an arm bundle.

The scene is the task's own model (arm, table, object, goal marker) and starts as the task's episodes do
(`ArmTask.start_episode`); the joint targets drive the model's PD actuators (controllers.pd_torque), as in training.
It exposes what a perception node would see besides the joints: the object's pose and the goal, in the arm's base
frame, and the task's success measure (`distance`, `success`) as ground truth.
"""

from __future__ import annotations

import copy
from typing import Any

import mujoco
import numpy as np

from robot_rl.errors import ConfigError
from robot_rl.sim.arm_task import ArmTask
from robot_rl.sim.manipulation import OBJECT
from robot_rl.sim.mjmodel import joint_gains, write_pd
from robot_rl.state import RobotState


class ArmSceneSim:
    """An arm task's scene stepped with held joint targets (module docstring); the simulated robot node's world."""

    def __init__(self, task: str, overrides: list[str] | None = None, seed: int = 0) -> None:
        from robot_rl.sim import resolve_config
        from robot_rl.sim.registry import get_task

        built = get_task(task).make_task(resolve_config(task, None, overrides))
        if not isinstance(built, ArmTask):
            raise ConfigError(f"scene_task: {task} is not an arm task")
        self.task: ArmTask = built
        c = built.contract
        self.joint_names: list[str] = list(c.joint_names)
        self.model = copy.copy(built.model)
        self.data = mujoco.MjData(self.model)
        self.physics_dt = float(self.model.opt.timestep)
        self.kp, self.kd = np.asarray(c.kp, float), np.asarray(c.kd, float)
        self.torque_limit = np.asarray(c.torque_limit, float)
        m, r = self.model, built.robot
        self._jq = np.array([m.jnt_qposadr[m.joint(j).id] for j in self.joint_names])
        self._jv = np.array([m.jnt_dofadr[m.joint(j).id] for j in self.joint_names])
        oq = int(m.jnt_qposadr[m.joint(OBJECT).id])
        self._obj = slice(oq, oq + 7)
        self._ee = m.site(r.ee_site).id
        self.goal = np.zeros(3)
        self.success_threshold = float(built.cfg.rewards.success_threshold)
        self._rng = np.random.default_rng(seed)
        self.reset(seed)

    def reset(self, seed: int | None = None) -> RobotState:
        """A new episode of the task (arm, object and goal as its resets draw them; seeded when `seed` is given)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        goal, _ = self.task.start_episode(self._rng, self.model, self.data)
        self.goal[:] = goal
        mujoco.mj_forward(self.model, self.data)
        return self.state()

    def set_pd(self, kp: np.ndarray | float, kd: np.ndarray | float) -> None:
        """New gains on every joint (kp = 0: damping mode, the e-stop backup)."""
        self.kp, self.kd = joint_gains(kp, kd, len(self.joint_names))
        write_pd(self.model, self.kp, self.kd, 1.0, self.torque_limit)

    def apply_params(self, params: dict[str, Any]) -> None:
        """Physical parameters are not simulated for arm scenes: refused by name."""
        if params:
            raise ConfigError(f"arm scene {self.task.name}: physical parameters are not supported "
                              f"({', '.join(sorted(params))})")

    def step(self, targets: np.ndarray, n: int = 1) -> RobotState:
        """Hold joint position targets for n physics steps; returns the new state."""
        self.data.ctrl[:] = np.asarray(targets, float)
        for _ in range(n):
            mujoco.mj_step(self.model, self.data)
        return self.state()

    def state(self) -> RobotState:
        """Joints of the arm (a fixed base: identity orientation, no IMU), evaluated at the current state."""
        m, d = self.model, self.data
        mujoco.mj_forward(m, d)
        return RobotState(joint_pos=d.qpos[self._jq].copy(), joint_vel=d.qvel[self._jv].copy(),
                          base_quat=np.array([1.0, 0.0, 0.0, 0.0]), base_ang_vel=np.zeros(3),
                          base_lin_acc=np.array([0.0, 0.0, 9.81]), timestamp=float(d.time),
                          joint_effort=d.actuator_force.copy())

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The object's position (base frame) [m] and orientation (w, x, y, z)."""
        q = self.data.qpos[self._obj]
        return q[:3].copy(), q[3:7].copy()

    def distance(self) -> float:
        """The task's success distance: grasp point to goal (reach) or object to goal."""
        other = self.data.site_xpos[self._ee] if self.task.REACHES_GOAL else self.data.qpos[self._obj][:3]
        return float(np.linalg.norm(self.goal - other))

    def success(self) -> bool:
        return self.distance() < self.success_threshold
