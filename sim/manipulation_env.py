"""Vectorized manipulation environment: N arm worlds in one process, stepped by `mujoco.rollout` (GIL released).

The VecEnv API of docs/interfaces.md over a ManipulationTask. One policy step: decode the action (joint deltas
through the contract, or end-effector deltas through controllers.osc), certify the joint targets with the safety
chain, feed them through the latency delay line to PD actuators at physics rate, then compute task quantities
(grasp point, object, goal) from the new joint and object states with the shared kinematics.

Physics is one call, `self._physics.rollout(models, datas, state, ctrl, ...)`, with MuJoCo's full-physics state
layout: the PyBullet backend replaces that object and nothing else, so observations, rewards, randomization and
safety are the same code in both engines.
"""

from __future__ import annotations

import copy
from typing import Any

import mujoco
import numpy as np
from mujoco import rollout

from robot_rl.controllers import TargetHistory
from robot_rl.controllers.osc import EndEffectorController
from robot_rl.sim.manipulation import (
    GOAL,
    OBJECT,
    TABLE,
    ArmRandomizationConfig,
    ManipulationTask,
    ManipView,
    obs_keys,
    task_distance,
)
from robot_rl.sim.mjmodel import name_ids, write_pd
from robot_rl.sim.vec_env import load_safety_chain
from robot_rl.state import RobotState

_STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS
MAX_QVEL = 1e3

_PARAMS = ("object_mass", "object_size", "object_friction", "joint_damping", "motor_strength", "kp_scale",
           "kd_scale", "latency_steps", "joint_pos_noise", "joint_vel_noise", "object_pos_noise")
_NOMINAL = {"object_mass": 1.0, "object_size": 1.0, "object_friction": 1.0, "motor_strength": 1.0, "kp_scale": 1.0,
            "kd_scale": 1.0}


def sample_arm_params(cfg: ArmRandomizationConfig, rng: np.random.Generator, n: int) -> dict[str, np.ndarray]:
    """One episode's randomization values for n environments (nominal where disabled or `never`)."""
    out = {k: np.full(n, _NOMINAL.get(k, 0.0)) for k in _PARAMS}
    out["latency_steps"] = np.zeros(n, np.int64)
    if not cfg.enabled:
        return out
    for k in _PARAMS:
        term = getattr(cfg, k)
        if term.when != "reset":
            continue
        if k == "latency_steps":
            out[k] = rng.integers(int(np.ceil(term.low)), int(np.floor(term.high)) + 1, size=n)
        else:
            out[k] = rng.uniform(term.low, term.high, size=n)
    return out


class ManipVecEnv:
    """N environments of one manipulation task (see the module docstring)."""

    backend = "mujoco"

    def __init__(self, task: ManipulationTask, num_envs: int, seed: int, safety: bool = True,
                 physics: Any = None) -> None:
        self.task = task
        self.cfg = task.cfg
        self.contract = task.contract
        self.num_envs = n = int(num_envs)
        self.obs_dim = self.contract.obs_dim
        self.act_dim = self.contract.act_dim
        self.decimation = dec = task.decimation
        self.policy_dt = self.cfg.control.policy_dt
        self.nan_resets = 0
        self._rng = np.random.default_rng(seed)
        r = task.robot
        m = self._nominal = task.model
        self._models = [copy.copy(m) for _ in range(n)]
        self.num_threads = self.cfg.num_threads
        self._datas = [mujoco.MjData(m) for _ in range(self.num_threads)]
        self._kin = mujoco.MjData(m)
        self._physics = physics if physics is not None else rollout.Rollout(
            nthread=self.num_threads if self.num_threads > 1 else 0)
        self._nstate = mujoco.mj_stateSize(m, _STATE)
        self._jq = 1 + np.array([m.jnt_qposadr[m.joint(j).id] for j in r.joint_names])
        self._jv = 1 + m.nq + np.array([m.jnt_dofadr[m.joint(j).id] for j in r.joint_names])
        self._mimic_q = np.array([m.jnt_qposadr[m.joint(j).id] for j in r.mimic_joints], np.int64)
        self._arm_dofs = np.array([m.jnt_dofadr[m.joint(j).id] for j in r.joint_names[:r.arm_joints]])
        oq = int(m.jnt_qposadr[m.joint(OBJECT).id])
        ov = int(m.jnt_dofadr[m.joint(OBJECT).id])
        self._obj_q = slice(1 + oq, 1 + oq + 7)
        self._obj_v = slice(1 + m.nq + ov, 1 + m.nq + ov + 3)
        self._obj_body = int(name_ids(m, mujoco.mjtObj.mjOBJ_BODY, [OBJECT])[0])
        self._obj_geom = int(name_ids(m, mujoco.mjtObj.mjOBJ_GEOM, [OBJECT])[0])
        name_ids(m, mujoco.mjtObj.mjOBJ_GEOM, [TABLE])
        self._ee_site = int(name_ids(m, mujoco.mjtObj.mjOBJ_SITE, [r.ee_site])[0])
        self._mocap = int(m.body_mocapid[name_ids(m, mujoco.mjtObj.mjOBJ_BODY, [GOAL])[0]])
        self._arm_dof_cols = np.array([m.jnt_dofadr[m.joint(j).id] for j in r.joint_names[:r.arm_joints]])

        # controller
        self._osc: EndEffectorController | None = None
        if self.contract.action.type == "ee_delta":
            kd = mujoco.MjData(m)
            mujoco.mj_resetDataKeyframe(m, kd, m.key("home").id)
            mujoco.mj_kinematics(m, kd)
            grip = (task.joint_lower[-1], task.joint_upper[-1]) if r.has_gripper else (0.0, 0.0)
            self._osc = EndEffectorController(
                arm_joints=r.arm_joints, scale=self.contract.action.scale, damping=self.cfg.control.ik_damping,
                orientation_gain=self.cfg.control.orientation_gain,
                target_rot=kd.site_xmat[self._ee_site].reshape(3, 3).copy(),
                gripper_lower=float(grip[0]), gripper_upper=float(grip[1]),
                gripper_binary=self.cfg.control.gripper == "binary")

        # buffers
        nu = m.nu
        self._state = np.zeros((n, self._nstate))
        self._prev_state = np.zeros_like(self._state)
        self._out = np.zeros((n, dec, self._nstate))
        self._sens = np.zeros((n, dec, m.nsensordata))
        self._ctrl = np.zeros((n, dec, nu))
        lat = self.cfg.randomization.latency_steps
        max_lat = int(np.floor(lat.high)) if self.cfg.randomization.enabled and lat.when == "reset" else 0
        self._default = np.asarray(self.contract.default_joint_pos)
        self._delay = TargetHistory(n, nu, dec, max_lat)
        self._action = np.zeros((n, self.act_dim))
        self._applied = np.zeros((n, self.act_dim))
        self._last_action = np.zeros((n, self.act_dim))
        self._targets = np.zeros((n, nu))
        self._ee = np.zeros((n, 3))
        self._ee_rot = np.zeros((n, 3, 3))
        self._jac = np.zeros((n, 6, r.arm_joints))
        self._goal = np.zeros((n, 3))
        self._rest_z = np.zeros(n)
        self._ep_step = np.zeros(n, np.int64)
        self._ep_return = np.zeros(n)
        self._ep_min_dist = np.zeros(n)
        self._params = sample_arm_params(self.cfg.randomization, self._rng, n)
        nj = len(r.joint_names)
        self._noisy = RobotState(joint_pos=np.zeros((n, nj)), joint_vel=np.zeros((n, nj)),
                                 base_quat=np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)), base_ang_vel=np.zeros((n, 3)),
                                 base_lin_acc=np.tile([0.0, 0.0, 9.81], (n, 1)), timestamp=np.zeros(n),
                                 extras={k: np.zeros((n, 3)) for k in obs_keys(task.kind)})
        self._observer = self.contract.make_observer((n,))
        self._reset_observer = self.contract.make_observer((n,))
        self._obs = np.zeros((n, self.obs_dim), np.float32)
        self._chain = load_safety_chain(self.contract) if safety and self.contract.safety else None
        self._renderer: mujoco.Renderer | None = None
        self._render_data: mujoco.MjData | None = None
        self.reset()

    # ---- state ---------------------------------------------------------------------------------------------------
    def _kinematics(self) -> None:
        """Grasp-point position, orientation and 6 x arm Jacobian of every env from its current joint state."""
        m, d = self._nominal, self._kin
        nq = m.nq
        jac = np.zeros((6, m.nv))
        for i in range(self.num_envs):
            d.qpos[:] = self._state[i, 1:1 + nq]
            mujoco.mj_kinematics(m, d)
            mujoco.mj_comPos(m, d)
            mujoco.mj_jacSite(m, d, jac[:3], jac[3:], self._ee_site)
            self._ee[i] = d.site_xpos[self._ee_site]
            self._ee_rot[i] = d.site_xmat[self._ee_site].reshape(3, 3)
            self._jac[i] = jac[:, self._arm_dof_cols]

    def _extras(self, obj: np.ndarray, obj_vel: np.ndarray) -> dict[str, np.ndarray]:
        ex = {"ee_pos": self._ee, "goal_pos": self._goal}
        if self.task.kind == "reach":
            ex["ee_to_goal"] = self._goal - self._ee
            return ex
        ex.update(object_pos=obj, ee_to_object=obj - self._ee, object_to_goal=self._goal - obj, object_vel=obj_vel)
        return ex

    def _true_state(self) -> RobotState:
        n = self.num_envs
        obj = self._state[:, self._obj_q][:, :3]
        return RobotState(joint_pos=self._state[:, self._jq].copy(), joint_vel=self._state[:, self._jv].copy(),
                          base_quat=np.tile([1.0, 0.0, 0.0, 0.0], (n, 1)), base_ang_vel=np.zeros((n, 3)),
                          base_lin_acc=np.tile([0.0, 0.0, 9.81], (n, 1)), timestamp=self._ep_step * self.policy_dt,
                          base_pos=np.zeros((n, 3)),
                          extras={k: v.copy() for k, v in self._extras(obj, self._state[:, self._obj_v]).items()})

    def _observe_state(self) -> RobotState:
        """Sensor model: white noise on joints and on the object's position (what the policy sees)."""
        p, s, rng = self._params, self._noisy, self._rng
        n, nj = s.joint_pos.shape
        s.joint_pos[:] = self._state[:, self._jq] + rng.standard_normal((n, nj)) * p["joint_pos_noise"][:, None]
        s.joint_vel[:] = self._state[:, self._jv] + rng.standard_normal((n, nj)) * p["joint_vel_noise"][:, None]
        obj = self._state[:, self._obj_q][:, :3] + rng.standard_normal((n, 3)) * p["object_pos_noise"][:, None]
        for k, v in self._extras(obj, self._state[:, self._obj_v]).items():
            s.extras[k][:] = v
        s.timestamp = self._ep_step * self.policy_dt
        return s

    # ---- reset -------------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._reset_envs(np.arange(self.num_envs))
        self._observer.reset()
        self._kinematics()
        self._obs[:] = self._observer(self._observe_state(), np.zeros((self.num_envs, 0)), self._last_action)
        return self._obs.copy()

    def _apply_params(self, i: int) -> float:
        """Write env i's randomization into its model; returns the object's half edge."""
        model, nom, p, c = self._models[i], self._nominal, self._params, self.contract
        b, g = self._obj_body, self._obj_geom
        size = nom.geom_size[g] * p["object_size"][i]
        model.geom_size[g] = size
        model.geom_rbound[g] = nom.geom_rbound[g] * p["object_size"][i]
        model.geom_aabb[g] = nom.geom_aabb[g] * p["object_size"][i]
        model.body_mass[b] = nom.body_mass[b] * p["object_mass"][i]
        model.body_inertia[b] = nom.body_inertia[b] * p["object_mass"][i] * p["object_size"][i] ** 2
        model.geom_friction[g, 0] = p["object_friction"][i]
        model.dof_damping[self._arm_dofs] = nom.dof_damping[self._arm_dofs] + p["joint_damping"][i]
        write_pd(model, np.asarray(c.kp) * p["kp_scale"][i], np.asarray(c.kd) * p["kd_scale"][i],
                 p["motor_strength"][i], np.asarray(c.torque_limit))
        # constraint scaling (body_invweight0 & co.) must follow the new mass, or contacts turn too stiff
        mujoco.mj_setConst(model, self._kin)
        return float(size[2])

    def _reset_envs(self, idx: np.ndarray) -> None:
        task, rng, m = self.task, self._rng, self._nominal
        new = sample_arm_params(self.cfg.randomization, rng, len(idx))
        for k, v in new.items():
            self._params[k][idx] = v
        self._delay.set_latency(idx, self._params["latency_steps"][idx])
        d = mujoco.MjData(m)
        key = m.key("home")
        for i in idx:
            half = self._apply_params(int(i))
            mujoco.mj_resetDataKeyframe(self._models[i], d, key.id)
            q, targets = task.initial_joints(rng, half)
            d.qpos[self._jq - 1] = q
            d.qpos[self._mimic_q] = q[-1]
            obj, goal = task.sample_object_goal(rng, half)
            d.qpos[self._obj_q.start - 1:self._obj_q.start + 2] = obj
            d.mocap_pos[self._mocap] = goal
            d.ctrl[:] = targets
            mujoco.mj_forward(self._models[i], d)
            mujoco.mj_getState(self._models[i], d, self._state[i], _STATE)
            self._goal[i] = goal
            self._rest_z[i] = half
            self._delay.hist[i] = targets
        self._last_action[idx] = 0.0
        self._ep_step[idx] = 0
        self._ep_return[idx] = 0.0
        self._ep_min_dist[idx] = np.inf
        if self._chain is not None:
            mask = np.zeros(self.num_envs, bool)
            mask[idx] = True
            self._chain.reset(mask)

    # ---- step --------------------------------------------------------------------------------------------------
    def _decode(self, state: RobotState) -> np.ndarray:
        """Joint targets of the current actions, inside the joint range (the arm's controller rejects others)."""
        if self._osc is not None:
            targets = self._osc.targets(self._action, state.joint_pos, self._jac, self._ee_rot)
        else:
            targets = self.contract.act(self._action, state)
        return np.clip(targets, self.task.joint_lower, self.task.joint_upper)

    def _encode(self, targets: np.ndarray, state: RobotState) -> np.ndarray:
        """Action that the certified targets realise (what the learner stores)."""
        if self._osc is not None:  # first-order estimate, kept inside the action box
            clip = self.contract.action.clip
            return np.clip(self._osc.action_of(targets, state.joint_pos, self._jac), -clip, clip)
        return (targets - state.joint_pos) / self.contract.action.scale

    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        c = self.contract
        np.clip(np.asarray(actions, dtype=np.float64).reshape(self.num_envs, self.act_dim), -c.action.clip,
                c.action.clip, out=self._action)
        seen = self._noisy
        self._targets[:] = self._decode(seen)
        info: dict[str, Any] = {}
        if self._chain is not None:
            safe, sinfo = self._chain.certify_batch(seen, self._targets)
            changed = np.any(np.abs(safe - self._targets) > 1e-9, axis=1)
            self._targets[:] = safe
            self._applied[:] = self._action
            if changed.any():
                self._applied[changed] = self._encode(safe, seen)[changed]
            info["safety"] = sinfo
        else:
            self._applied[:] = self._action
            info["safety"] = {}
        self._delay.push(self._targets, self._ctrl)
        self._prev_state[:] = self._state
        self._physics.rollout(self._models, self._datas, self._state, self._ctrl, nstep=self.decimation,
                              state=self._out, sensordata=self._sens, skip_checks=True)
        self._state[:] = self._out[:, -1]
        bad = self._unstable()
        self._ep_step += 1
        self._kinematics()

        view = self._view()
        reward, terms = self.task.rewards(view, self.policy_dt)
        terminated = self.task.terminated(view)
        if bad.any():
            reward[bad] = 0.0
            for v in terms.values():
                v[bad] = 0.0
            terminated |= bad
            self.nan_resets += int(bad.sum())
        truncated = (self._ep_step >= self.task.max_episode_steps) & ~terminated
        self._ep_return += reward
        dist = task_distance(view)
        np.minimum(self._ep_min_dist, dist, out=self._ep_min_dist)
        success = self.task.success(view)

        obs = self._observer(self._observe_state(), np.zeros((self.num_envs, 0)), self._applied)
        self._last_action[:] = self._applied
        done = terminated | truncated
        info.update(reward_terms=terms, applied_action=self._applied.copy(), nan_resets=self.nan_resets,
                    final_obs=obs.copy(), episodes=[])
        if done.any():
            idx = np.flatnonzero(done)
            info["episodes"] = [self._episode_record(int(i), bool(terminated[i]), bool(bad[i]), float(dist[i]),
                                                     bool(success[i])) for i in idx]
            self._reset_envs(idx)
            self._kinematics()
            self._observer.reset(done)
            self._reset_observer.reset()
            fresh = self._reset_observer(self._observe_state(), np.zeros((self.num_envs, 0)), self._last_action)
            obs[idx] = fresh[idx]
            info["randomization"] = {k: v[idx] for k, v in self._params.items()} | {"envs": idx}
        self._obs[:] = obs
        return obs, reward, terminated, truncated, info

    def _view(self) -> ManipView:
        return ManipView(ee_pos=self._ee, goal=self._goal, object_pos=self._state[:, self._obj_q][:, :3],
                         object_rest_z=self._rest_z, joint_vel=self._state[:, self._jv], action=self._applied,
                         last_action=self._last_action, policy_action=self._action, kind=self.task.kind)

    def _unstable(self) -> np.ndarray:
        qvel = self._state[:, 1 + self._nominal.nq:1 + self._nominal.nq + self._nominal.nv]
        bad = ~np.isfinite(self._state).all(axis=1)
        bad |= np.abs(qvel).max(axis=1) > MAX_QVEL
        bad |= self._state[:, 0] < self._prev_state[:, 0] + 0.5 * self.decimation * self._nominal.opt.timestep
        if bad.any():
            self._state[bad] = self._prev_state[bad]
        return bad

    def _episode_record(self, i: int, terminated: bool, unstable: bool, dist: float, success: bool) -> dict[str, Any]:
        return {"return": float(self._ep_return[i]), "length": int(self._ep_step[i]), "success": success,
                "final_distance": dist, "min_distance": float(self._ep_min_dist[i]),
                "fell": terminated and not unstable, "unstable": unstable}

    # ---- inspection --------------------------------------------------------------------------------------------
    def get_state(self) -> RobotState:
        """True (noise-free) batched state, copied; task quantities in `extras`."""
        return self._true_state()

    def physics_state(self, env: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """One world's full-physics state (mjSTATE_FULLPHYSICS) and the controls of its last physics step, copied
        (e.g. for a bare mj_step reference on the same states)."""
        return self._state[env].copy(), self._ctrl[env, -1].copy()

    def model(self, env: int = 0) -> mujoco.MjModel:
        return self._models[env]

    @property
    def episode_params(self) -> dict[str, np.ndarray]:
        return {k: v.copy() for k, v in self._params.items()}

    def render(self, env: int = 0, width: int = 640, height: int = 480) -> np.ndarray:
        """RGB frame (H, W, 3) uint8 of one environment from a fixed camera facing the arm."""
        if self._renderer is None or (self._renderer.width, self._renderer.height) != (width, height):
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = mujoco.Renderer(self._nominal, height=height, width=width)
            self._render_data = mujoco.MjData(self._nominal)
        d = self._render_data
        assert d is not None
        m = self._models[env]
        mujoco.mj_setState(m, d, self._state[env], _STATE)
        d.mocap_pos[self._mocap] = self._goal[env]
        mujoco.mj_forward(m, d)
        cam = mujoco.MjvCamera()
        cam.lookat[:] = [0.45, 0.0, 0.15]
        cam.distance, cam.azimuth, cam.elevation = 1.4, 150.0, -25.0
        self._renderer.update_scene(d, camera=cam)
        return self._renderer.render()

    def close(self) -> None:
        if hasattr(self._physics, "close"):
            self._physics.close()
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
