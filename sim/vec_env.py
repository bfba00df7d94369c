"""Vectorized MuJoCo environment: N worlds in one process, stepped by `mujoco.rollout` in C threads (GIL released).

One policy step = one rollout call over all environments for `decimation` physics steps, with a per-physics-step
control sequence that realises the action latency (controllers.delayed_indices) and PD actuators that realise
controllers.pd_torque. Every environment owns its MjModel, so per-episode randomization of friction, mass, CoM and
actuator gains is a write into that model. Buffers are preallocated; Python loops only run over environments that
reset. An environment whose state turns non-finite or explodes is reset and counted, never raised.
"""

from __future__ import annotations

import copy
from typing import Any

import mujoco
import numpy as np
from mujoco import rollout

from robot_rl.controllers import TargetHistory
from robot_rl.fused import FusedObserver
from robot_rl.sim.locomotion import LocomotionTask, StepView
from robot_rl.sim.mjmodel import FLOOR, SensorSlices, as_slice, write_pd
from robot_rl.sim.randomization import (
    EpisodeParams,
    ModelIds,
    apply_to_model,
    next_push_delay,
    push_velocity,
    sample_episode_params,
)
from robot_rl.sim.step_kernels import rotate_inverse_and_gravity, sensor_noise, swing_times, take_last_state
from robot_rl.state import RobotState

_STATE = mujoco.mjtState.mjSTATE_FULLPHYSICS
MAX_QVEL = 1e3
"""|qvel| above this (rad/s or m/s) counts as a numerical blow-up."""


def quat_rotate_inverse(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate world vectors v (N, 3) into the frames of unit quaternions q (N, 4) (w, x, y, z): R(q)^T v."""
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    vx, vy, vz = v[:, 0], v[:, 1], v[:, 2]
    # t = 2 (xyz x v); result = v - w t + xyz x t  (written out: np.cross is slow on small batches)
    tx, ty, tz = 2.0 * (y * vz - z * vy), 2.0 * (z * vx - x * vz), 2.0 * (x * vy - y * vx)
    out = np.empty_like(v)
    out[:, 0] = vx - w * tx + (y * tz - z * ty)
    out[:, 1] = vy - w * ty + (z * tx - x * tz)
    out[:, 2] = vz - w * tz + (x * ty - y * tx)
    return out


def load_safety_chain(contract: Any) -> Any:
    """The contract's safety chain when robot_rl.safety provides `build_chain`, else None (run unfiltered)."""
    try:
        from robot_rl.safety import build_chain  # type: ignore[attr-defined]
    except ImportError:
        return None
    return build_chain(contract)


class MujocoVecEnv:
    """VecEnv API of docs/interfaces.md over a LocomotionTask."""

    def __init__(self, task: LocomotionTask, num_envs: int, seed: int, safety: bool = True) -> None:
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

        m = self._nominal = task.model
        if m.jnt_type[0] != mujoco.mjtJoint.mjJNT_FREE:
            raise ValueError("locomotion models must start with a free joint")
        self._models = [copy.copy(m) for _ in range(n)]
        self._ids = ModelIds.lookup(m, FLOOR, task.robot.base_body)
        self.num_threads = self.cfg.num_threads
        self._datas = [mujoco.MjData(m) for _ in range(self.num_threads)]
        self._scratch = mujoco.MjData(m)
        self._rollout = rollout.Rollout(nthread=self.num_threads if self.num_threads > 1 else 0)
        nu, nq = m.nu, m.nq
        self._nstate = mujoco.mj_stateSize(m, _STATE)
        jq = np.array([m.jnt_qposadr[m.joint(j).id] for j in task.robot.joint_names])
        jv = np.array([m.jnt_dofadr[m.joint(j).id] for j in task.robot.joint_names])
        self._jq = slice(1 + jq[0], 2 + jq[-1]) if np.all(np.diff(jq) == 1) else 1 + jq
        self._jv = slice(1 + nq + jv[0], 2 + nq + jv[-1]) if np.all(np.diff(jv) == 1) else 1 + nq + jv

        # physics buffers
        self._state = np.zeros((n, self._nstate))
        self._prev_state = np.zeros_like(self._state)
        # views kept for the life of the env (the buffers are only ever written in place)
        self._qpos_v = self._state[:, 1:1 + nq]
        self._qvel_v = self._state[:, 1 + nq:1 + nq + m.nv]
        self._time_v, self._prev_time_v = self._state[:, 0], self._prev_state[:, 0]
        self._lin_vel, self._gravity = np.zeros((n, 3)), np.zeros((n, 3))
        self._qvel_cols = (1 + nq, 1 + nq + m.nv)
        self._dt_min = 0.5 * dec * m.opt.timestep
        """A row whose time advanced less than this in a policy step was reset inside MuJoCo."""
        self._out = np.zeros((n, dec, self._nstate))
        self._sens = np.zeros((n, dec, m.nsensordata))
        self._ctrl = np.zeros((n, dec, nu))
        sl = SensorSlices.of(m)
        self._s_acc = sl.slices["imu_acc"]
        r = task.robot
        self._s_feet = as_slice(sl.columns([f"{f}_touch" for f in r.feet]))
        self._s_thigh = as_slice(sl.columns([f"{t}_touch" for t in r.thighs]))
        self._s_calf = as_slice(sl.columns([f"{c}_touch" for c in r.calves]))
        self._s_trunk = sl.slices[f"{r.base_body}_touch"].start
        # the reward's torque term reads a gather, not a view: its joint-major layout fixes the summation order,
        # and with it the bits of every training run recorded so far
        self._s_torque_cols = sl.columns([f"{j}_torque" for j in r.joint_names])
        self._s_torque = as_slice(self._s_torque_cols)

        # action path and delay line (policy-rate history of targets, newest first)
        lat = self.cfg.randomization.latency_steps
        max_lat = int(np.floor(lat.high)) if self.cfg.randomization.enabled and lat.when == "reset" else 0
        self._default = np.asarray(self.contract.default_joint_pos)
        self._delay = TargetHistory(n, nu, dec, max_lat)
        self._action = np.zeros((n, self.act_dim))
        self._applied = np.zeros((n, self.act_dim))
        self._last_action = np.zeros((n, self.act_dim))
        self._targets = np.zeros((n, nu))

        # episode bookkeeping
        self._command = np.zeros((n, 3))
        self._ep_step = np.zeros(n, np.int64)
        self._ep_return = np.zeros(n)
        self._ep_track_err = np.zeros(n)
        self._air_time = np.zeros((n, len(r.feet)))
        self._last_contact = np.zeros((n, len(r.feet)), bool)
        self._push_timer = np.full(n, np.inf)
        self._params = EpisodeParams.nominal(n, nu)
        self._noisy = RobotState(joint_pos=np.zeros((n, nu)), joint_vel=np.zeros((n, nu)),
                                 base_quat=np.zeros((n, 4)), base_ang_vel=np.zeros((n, 3)),
                                 base_lin_acc=np.zeros((n, 3)), timestamp=np.zeros(n))
        # one compiled call per batch when the terms allow it (same observations bit for bit), else the Observer
        self._observer = FusedObserver.build(self.contract, n) or self.contract.make_observer((n,))
        self._reset_observer = FusedObserver.build(self.contract, n) or self.contract.make_observer((n,))
        self._obs = np.zeros((n, self.obs_dim), np.float32)
        self._chain = load_safety_chain(self.contract) if safety else None
        self._damping = np.zeros(n, bool)
        """Environments whose actuators run the chain's damping backup (kp = 0) this tick."""
        self._no_bad = np.zeros(n, bool)
        """What _unstable returns when every environment is fine (read-only)."""
        self._renderer: mujoco.Renderer | None = None
        self._render_data: mujoco.MjData | None = None
        self.reset()

    # ---- state views -------------------------------------------------------------------------------------------
    def _qpos(self) -> np.ndarray:
        return self._qpos_v

    def _qvel(self) -> np.ndarray:
        return self._qvel_v

    def _true_state(self, copy_arrays: bool = False) -> RobotState:
        """The simulator's state, views into the env's buffers unless `copy_arrays`; also refreshes the projected
        gravity of the base that rewards and terminations read (`self._gravity`)."""
        qpos, qvel = self._qpos_v, self._qvel_v
        quat = qpos[:, 3:7]
        rotate_inverse_and_gravity(quat, qvel[:, 0:3], self._lin_vel, self._gravity)
        c = np.copy if copy_arrays else np.asarray
        return RobotState(joint_pos=c(self._state[:, self._jq]), joint_vel=c(self._state[:, self._jv]),
                          base_quat=c(quat), base_ang_vel=c(qvel[:, 3:6]),
                          base_lin_acc=c(self._sens[:, -1, self._s_acc]),
                          timestamp=self._ep_step * self.policy_dt, base_lin_vel=c(self._lin_vel),
                          base_pos=c(qpos[:, 0:3]), contacts=self._sens[:, -1, self._s_feet] > 1.0,
                          joint_effort=c(self._sens[:, -1, self._s_torque]))

    def _observe_state(self, true: RobotState) -> RobotState:
        """Sensor model: per-episode bias plus white noise on the measured fields (what the policy sees)."""
        p, s = self._params, self._noisy
        n, nj = true.joint_pos.shape
        # one draw for all four fields: the same stream as four draws in this order
        z = self._rng.standard_normal(n * (2 * nj + 7))
        sensor_noise(true.joint_pos, true.joint_vel, true.base_ang_vel, true.base_quat, p.joint_pos_bias,
                     p.joint_pos_noise, p.joint_vel_noise, p.ang_vel_bias, p.ang_vel_noise, p.quat_noise, z,
                     s.joint_pos, s.joint_vel, s.base_ang_vel, s.base_quat)
        s.base_lin_acc[:] = true.base_lin_acc
        s.timestamp = true.timestamp
        s.contacts = true.contacts
        s.base_pos = true.base_pos  # state estimate of the base height for the safety chain's height shield
        return s

    # ---- reset -------------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every environment (re-seeding when `seed` is given); returns raw observations (N, obs_dim)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        idx = np.arange(self.num_envs)
        self._reset_envs(idx)
        self._observer.reset()
        state = self._observe_state(self._true_state())
        self._obs[:] = self._observer(state, self._command, self._last_action)
        self._last_info_randomization = self._params.as_dict()
        return self._obs.copy()

    def _reset_envs(self, idx: np.ndarray) -> None:
        task, rng, c = self.task, self._rng, self.contract
        k = len(idx)
        params = sample_episode_params(self.cfg.randomization, rng, k, self._nominal.nu)
        self._params.assign(idx, params)
        kp, kd, lim = np.asarray(c.kp), np.asarray(c.kd), np.asarray(c.torque_limit)
        cmds = task.sample_commands(rng, k)
        self._command[idx] = cmds
        self._delay.set_latency(idx, self._params.latency_steps[idx])
        d = self._scratch
        for i in idx:
            model = self._models[i]
            apply_to_model(model, self._nominal, self._ids, self._params, int(i), kp, kd, lim, d)
            qpos, qvel = task.initial_state(rng)
            mujoco.mj_resetData(model, d)
            d.qpos[:], d.qvel[:] = qpos, qvel
            d.ctrl[:] = self._default
            mujoco.mj_forward(model, d)
            mujoco.mj_getState(model, d, self._state[i], _STATE)
            self._sens[i, :] = d.sensordata
        self._delay.hist[idx] = self._default
        self._damping[idx] = False  # apply_to_model wrote the episode's PD law
        self._last_action[idx] = 0.0
        self._ep_step[idx] = 0
        self._ep_return[idx] = 0.0
        self._ep_track_err[idx] = 0.0
        self._air_time[idx] = 0.0
        self._last_contact[idx] = False
        self._push_timer[idx] = next_push_delay(self.cfg.randomization, rng, k)
        if self._chain is not None:
            mask = np.zeros(self.num_envs, bool)
            mask[idx] = True
            self._chain.reset(mask)

    # ---- step --------------------------------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        c = self.contract
        a = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, self.act_dim)
        np.minimum(np.maximum(a, -c.action.clip, out=self._action), c.action.clip, out=self._action)  # = np.clip
        np.multiply(self._action, c.action.scale, out=self._targets)
        self._targets += self._default
        info: dict[str, Any] = {}
        if self._chain is not None:
            safe, sinfo = self._chain.certify_batch(self._noisy, self._targets)
            self._targets[:] = safe
            self._set_damping(np.asarray(sinfo["safety/damping"], dtype=bool))
            np.subtract(self._targets, self._default, out=self._applied)
            self._applied /= c.action.scale
            info["safety"] = sinfo
        else:
            self._applied[:] = self._action
            info["safety"] = {}

        # delay line: the physics sub-steps read targets issued 0..k policy steps ago
        self._delay.push(self._targets, self._ctrl)

        self._apply_pushes()
        self._prev_state[:] = self._state
        self._rollout.rollout(self._models, self._datas, self._state, self._ctrl, nstep=self.decimation,
                              state=self._out, sensordata=self._sens, skip_checks=True)
        bad = self._unstable(take_last_state(self._out, self._state, self._prev_state, *self._qvel_cols, MAX_QVEL,
                                             self._dt_min))
        self._ep_step += 1

        true = self._true_state()
        view = self._step_view(true)
        reward, terms = self.task.rewards(view, self.policy_dt)
        terminated = self.task.terminated(view)
        nan_resets = int(bad.sum())
        if nan_resets:
            reward[bad] = 0.0
            for v in terms.values():
                v[bad] = 0.0
            terminated |= bad
            self.nan_resets += nan_resets
        truncated = (self._ep_step >= self.task.max_episode_steps) & ~terminated
        self._ep_return += reward
        assert true.base_lin_vel is not None  # the simulator always knows the base velocity
        self._ep_track_err += np.sqrt(np.square(self._command[:, :2] - true.base_lin_vel[:, :2]).sum(axis=1))

        obs = self._observer(self._observe_state(true), self._command, self._applied)
        self._last_action[:] = self._applied
        done = terminated | truncated
        info.update(reward_terms=terms, applied_action=self._applied.copy(), nan_resets=nan_resets,
                    final_obs=obs.copy(), episodes=[])
        if done.any():
            idx = np.flatnonzero(done)
            info["episodes"] = [self._episode_record(int(i), bool(terminated[i]), bool(bad[i])) for i in idx]
            self._reset_envs(idx)
            self._observer.reset(done)
            self._reset_observer.reset()
            fresh = self._reset_observer(self._observe_state(self._true_state()), self._command, self._last_action)
            obs[idx] = fresh[idx]
            info["randomization"] = {k: v[idx] for k, v in self._params.as_dict().items()} | {"envs": idx}
        self._obs[:] = obs
        return obs, reward, terminated, truncated, info

    def _set_damping(self, damping: np.ndarray) -> None:
        """Switch the actuators of environments whose chain chose the damping backup to kp = 0, kd = the chain's
        damping_kd for this tick (the robot's e-stop mode), and environments that left it back to their PD law."""
        change = np.flatnonzero(damping != self._damping)
        if change.size == 0:
            return
        c, p = self.contract, self._params
        assert self._chain is not None  # damping is only ever requested by the chain
        kp, kd, lim = np.asarray(c.kp), np.asarray(c.kd), np.asarray(c.torque_limit)
        for i in change:
            if damping[i]:
                write_pd(self._models[i], np.zeros_like(kp), self._chain.damping_kd * p.kd_scale[i],
                         p.motor_strength[i], lim)
            else:
                write_pd(self._models[i], kp * p.kp_scale[i], kd * p.kd_scale[i], p.motor_strength[i], lim)
        self._damping[:] = damping

    def _unstable(self, ok: bool) -> np.ndarray:
        """Rows whose state is non-finite, exploded, or was reset inside MuJoCo (time went back): restore them.
        `ok` is take_last_state's verdict on the whole batch (the common case: no per-row masks)."""
        if ok:
            return self._no_bad
        bad = ~np.isfinite(self._state).all(axis=1)
        bad |= np.abs(self._qvel_v).max(axis=1) > MAX_QVEL  # NaN compares False; caught by isfinite above
        bad |= self._time_v < self._prev_time_v + self._dt_min
        if bad.any():
            self._state[bad] = self._prev_state[bad]
            self._sens[bad] = 0.0
        return bad

    def _apply_pushes(self) -> None:
        self._push_timer -= self.policy_dt
        due = self._push_timer <= 0.0
        if due.any():
            idx = np.flatnonzero(due)
            qv = 1 + self._nominal.nq
            self._state[idx, qv:qv + 2] += push_velocity(self.cfg.randomization, self._rng, len(idx))
            self._push_timer[idx] = next_push_delay(self.cfg.randomization, self._rng, len(idx))

    def _step_view(self, true: RobotState) -> StepView:
        """What the reward terms see; call right after `_true_state` (it reads the gravity that call computed)."""
        feet = self._sens[:, -1, self._s_feet]
        air, first = np.empty_like(self._air_time), np.empty_like(self._last_contact)
        swing_times(feet, self._last_contact, self._air_time, self.policy_dt, air, first)
        return StepView(base_lin_vel=true.base_lin_vel, base_ang_vel=true.base_ang_vel, base_quat=true.base_quat,
                        gravity=self._gravity,
                        base_height=self._qpos_v[:, 2], joint_pos=true.joint_pos, joint_vel=true.joint_vel,
                        torques=self._sens[:, :, self._s_torque_cols], action=self._applied,
                        last_action=self._last_action, policy_action=self._action, command=self._command,
                        feet_touch=feet, thigh_touch=self._sens[:, -1, self._s_thigh],
                        calf_touch=self._sens[:, -1, self._s_calf], trunk_touch=self._sens[:, -1, self._s_trunk],
                        air_time=air, first_contact=first)

    def _episode_record(self, i: int, terminated: bool, unstable: bool) -> dict[str, Any]:
        length = int(self._ep_step[i])
        return {"return": float(self._ep_return[i]), "length": length,
                "tracking_error": float(self._ep_track_err[i] / max(length, 1)),
                "fell": terminated and not unstable, "success": not terminated, "unstable": unstable,
                "command": self._command[i].tolist()}

    # ---- inspection --------------------------------------------------------------------------------------------
    def get_state(self) -> RobotState:
        """True (noise-free) batched state, copied."""
        return self._true_state(copy_arrays=True)

    def substep_joint_states(self) -> tuple[np.ndarray, np.ndarray]:
        """True joint positions and velocities (N, decimation, n) after every physics step of the last `step`
        (before auto-reset), e.g. to check joint limits at physics rate."""
        return self._out[:, :, self._jq].copy(), self._out[:, :, self._jv].copy()

    @property
    def safety_chain(self) -> Any:
        """The SafetyChain certifying every step (None when built with safety=False)."""
        return self._chain

    @property
    def damping(self) -> np.ndarray:
        """(N,) bool: environments whose actuators ran the damping backup during the last step."""
        return self._damping.copy()

    @property
    def commands(self) -> np.ndarray:
        return self._command.copy()

    def set_commands(self, commands: np.ndarray) -> None:
        """Override the current episode commands (evaluation at a fixed command, e.g. vx = 0.5 m/s)."""
        self._command[:] = commands

    def physics_state(self, env: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """One world's full-physics state (mjSTATE_FULLPHYSICS) and the controls of its last physics step, copied
        (e.g. for a bare mj_step reference on the same states)."""
        return self._state[env].copy(), self._ctrl[env, -1].copy()

    def model(self, env: int = 0) -> mujoco.MjModel:
        """The (randomized) model of one environment; read-only by convention."""
        return self._models[env]

    @property
    def episode_params(self) -> dict[str, np.ndarray]:
        """Current per-env randomization values."""
        return self._params.as_dict()

    def render(self, env: int = 0, width: int = 640, height: int = 480) -> np.ndarray:
        """RGB frame (H, W, 3) uint8 of one environment, camera tracking its trunk."""
        m = self._models[env]
        if self._renderer is None or (self._renderer.width, self._renderer.height) != (width, height):
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = mujoco.Renderer(self._nominal, height=height, width=width)
            self._render_data = mujoco.MjData(self._nominal)
        d = self._render_data
        assert d is not None
        mujoco.mj_setState(m, d, self._state[env], _STATE)
        mujoco.mj_forward(m, d)
        cam = mujoco.MjvCamera()
        cam.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        cam.trackbodyid = self._ids.base_body
        cam.distance, cam.azimuth, cam.elevation = 1.5, 135.0, -20.0
        self._renderer.update_scene(d, camera=cam)
        return self._renderer.render()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
