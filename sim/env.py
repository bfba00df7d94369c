"""The environment core: N worlds of one task in one process, stepped by a physics engine (VecEnv API of
docs/interfaces.md).

One policy step: the control step (robot_rl.control_step: clip, decode through the task's action codec, certify with
the safety chain, encode the applied action), the targets through the latency delay line (controllers.TargetHistory)
to the PD actuators at physics rate, one engine call for `decimation` physics steps of every world, then the task's
view of the new state, its rewards (robot_rl.rewards.weighted_sum), terminations and metrics, the observation through
the contract's observer, and auto-reset of finished worlds with fresh randomization.

What varies plugs in: a `Task` (robot_rl.sim.task) and a `PhysicsEngine` (robot_rl.sim.engine, chosen by name).
Every world owns its MjModel, so randomization is a write into that model. Buffers are preallocated; Python loops
only run over worlds that reset. A world whose state turns non-finite, explodes or is reset inside the engine is
restored, ended and counted (`info["nan_resets"]`, this step's count), never raised.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from robot_rl.contract import PolicyContract
from robot_rl.control_step import ControlStep
from robot_rl.controllers import TargetHistory
from robot_rl.fused import FusedObserver
from robot_rl.sim.engine import EngineRequest, make_engine
from robot_rl.sim.mjmodel import write_pd
from robot_rl.sim.randomization import EpisodeParams, apply_to_model, sample_terms
from robot_rl.sim.step_kernels import take_last_state
from robot_rl.sim.task import Batch, Task
from robot_rl.state import RobotState

STATE_KIND = mujoco.mjtState.mjSTATE_FULLPHYSICS
MAX_QVEL = 1e3
"""|qvel| above this (rad/s or m/s) counts as a numerical blow-up."""


def load_safety_chain(contract: PolicyContract) -> Any:
    """The contract's safety chain (robot_rl.safety.build_chain)."""
    from robot_rl.safety import build_chain

    return build_chain(contract)


class VecEnv:
    """N worlds of `task` on the physics engine `backend` (see the module docstring)."""

    def __init__(self, task: Task[Any, Any], num_envs: int, seed: int, *, backend: str = "mujoco",
                 safety: bool = True) -> None:
        self.task = task
        self.cfg = task.cfg
        self.contract = c = task.contract
        self.backend = backend
        self.num_envs = n = int(num_envs)
        self.obs_dim = c.obs_dim
        self.act_dim = c.act_dim
        self.decimation = dec = task.decimation
        self.policy_dt = task.policy_dt
        self.num_threads = task.num_threads
        self.nan_resets = 0
        """Worlds restored after a numerical blow-up since construction."""
        self._rng = np.random.default_rng(seed)

        m = self._nominal = task.model
        self.engine = make_engine(backend, EngineRequest(m, task.urdf, n, task.num_threads))
        self._models = self.engine.load(m, n)
        self._scratch = mujoco.MjData(m)
        nstate = mujoco.mj_stateSize(m, STATE_KIND)
        self._state = np.zeros((n, nstate))
        self._prev_state = np.zeros_like(self._state)
        self._time_v, self._prev_time_v = self._state[:, 0], self._prev_state[:, 0]
        self._qvel_cols = (1 + m.nq, 1 + m.nq + m.nv)
        self._qvel_v = self._state[:, self._qvel_cols[0]:self._qvel_cols[1]]
        self._dt_min = 0.5 * dec * m.opt.timestep
        """A row whose time advanced less than this in a policy step was reset inside the engine."""
        self._out = np.zeros((n, dec, nstate))
        self._sens = np.zeros((n, dec, m.nsensordata))
        self._ctrl = np.zeros((n, dec, m.nu))
        jq = [int(m.jnt_qposadr[m.joint(j).id]) for j in c.joint_names]
        jv = [int(m.jnt_dofadr[m.joint(j).id]) for j in c.joint_names]
        self._jq, self._jv = 1 + np.array(jq), 1 + m.nq + np.array(jv)

        # randomization: startup terms once, reset terms per episode (in _reset_envs)
        rand = task.randomization
        nj = c.num_joints
        self._params = EpisodeParams.nominal(rand, n, nj)
        self._params.assign(np.arange(n), sample_terms(rand, self._rng, n, nj, "startup"))
        self._kp, self._kd = np.asarray(c.kp), np.asarray(c.kd)
        self._torque_limit = np.asarray(c.torque_limit)

        # the task's buffers, then the control step (its codec may read them), delay line, bookkeeping
        self._last_action = np.zeros((n, self.act_dim))
        self._ep_step = np.zeros(n, np.int64)
        self._ep_return = np.zeros(n)
        self._batch = Batch(num_envs=n, policy_dt=self.policy_dt, nominal=m, models=self._models, state=self._state,
                            sens=self._sens, ep_step=self._ep_step, params=self._params,
                            action=np.zeros((n, self.act_dim)), applied=np.zeros((n, self.act_dim)),
                            intervened=np.zeros(n, bool), last_action=self._last_action)
        task.allocate(self._batch, self._rng)
        self._chain = load_safety_chain(c) if safety and c.safety else None
        self._control = ControlStep(c, (n,), codec=task.codec(),
                                    certify=self._chain.certify_batch if self._chain is not None else None)
        self._batch.action, self._batch.applied = self._control.action, self._control.applied
        self._batch.intervened = self._control.intervened
        self._delay = TargetHistory(n, m.nu, dec, int(rand.upper("latency_steps")))
        self._damping = np.zeros(n, bool)
        """Worlds whose actuators run the chain's damping backup (kp = 0) this tick."""
        self._no_bad = np.zeros(n, bool)
        """What _unstable returns when every world is fine (read-only)."""

        # one compiled call per batch when the terms allow it (same observations bit for bit), else the Observer
        self._observer = FusedObserver.build(c, n) or c.make_observer((n,))
        self._reset_observer = FusedObserver.build(c, n) or c.make_observer((n,))
        self._obs = np.zeros((n, self.obs_dim), np.float32)
        self._seen: RobotState
        """What the policy and the chain saw at the last observation (set by reset)."""
        self._renderer: mujoco.Renderer | None = None
        self._render_data: mujoco.MjData | None = None
        self.reset()

    # ---- reset -------------------------------------------------------------------------------------------------
    def reset(self, seed: int | None = None) -> np.ndarray:
        """Reset every world (re-seeding when `seed` is given); returns raw observations (N, obs_dim)."""
        if seed is not None:
            self._rng = np.random.default_rng(seed)
        self._reset_envs(np.arange(self.num_envs))
        self._observer.reset()
        self._seen = self.task.measure(self.task.sense(), self._rng)
        self._obs[:] = self._observer(self._seen, self.task.command, self._last_action)
        return self._obs.copy()

    def _reset_envs(self, idx: np.ndarray) -> None:
        task, rng, rand = self.task, self._rng, self.task.randomization
        self._params.assign(idx, sample_terms(rand, rng, len(idx), self.contract.num_joints))
        self._delay.set_latency(idx, self._params["latency_steps"][idx])
        task.reset_batch(idx, rng)
        d = self._scratch
        for i in idx:
            model = self._models[i]
            apply_to_model(model, self._nominal, task.param_ids, self._params, int(i), self._kp, self._kd,
                           self._torque_limit, d)
            task.init_world(int(i), rng, model, d)
            mujoco.mj_forward(model, d)
            mujoco.mj_getState(model, d, self._state[i], STATE_KIND)
            self._sens[i, :] = d.sensordata
            self._delay.hist[i] = d.ctrl
        self.engine.set_params(idx)
        self._damping[idx] = False  # apply_to_model wrote the episode's PD law
        self._last_action[idx] = 0.0
        self._ep_step[idx] = 0
        self._ep_return[idx] = 0.0
        task.finish_reset(idx, rng)
        if self._chain is not None:
            mask = np.zeros(self.num_envs, bool)
            mask[idx] = True
            self._chain.reset(mask)

    # ---- step --------------------------------------------------------------------------------------------------
    def step(self, actions: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        task = self.task
        ctl = self._control
        targets = ctl(np.asarray(actions, dtype=np.float64).reshape(self.num_envs, self.act_dim), self._seen)
        info: dict[str, Any] = {"safety": ctl.info, "intervened": ctl.intervened.copy()}
        if self._chain is not None:
            self._set_damping(np.asarray(ctl.info["safety/damping"], dtype=bool))

        # delay line: the physics sub-steps read targets issued 0..k policy steps ago
        self._delay.push(targets, self._ctrl)
        task.perturb(self._rng)
        self._prev_state[:] = self._state
        self.engine.step(self._models, self._state, self._ctrl, self._out, self._sens)
        bad = self._unstable(take_last_state(self._out, self._state, self._prev_state, *self._qvel_cols, MAX_QVEL,
                                             self._dt_min))
        self._ep_step += 1

        sensed = task.sense()
        view = task.view(sensed)
        reward, terms = task.rewards(view)
        terminated = task.terminated(view)
        nan_resets = int(bad.sum())
        if nan_resets:
            reward[bad] = 0.0
            for v in terms.values():
                v[bad] = 0.0
            terminated |= bad
            self.nan_resets += nan_resets
        truncated = (self._ep_step >= task.max_episode_steps) & ~terminated
        self._ep_return += reward
        task.track(view)

        applied = ctl.applied
        self._seen = task.measure(sensed, self._rng)
        obs = self._observer(self._seen, task.command, applied)
        self._last_action[:] = applied
        done = terminated | truncated
        info.update(reward_terms=terms, applied_action=applied.copy(), nan_resets=nan_resets, final_obs=obs.copy(),
                    episodes=[])
        if done.any():
            idx = np.flatnonzero(done)
            info["episodes"] = [self._episode_record(view, int(i), bool(terminated[i]), bool(bad[i])) for i in idx]
            self._reset_envs(idx)
            self._observer.reset(done)
            self._reset_observer.reset()
            self._seen = task.measure(task.sense(), self._rng)
            fresh = self._reset_observer(self._seen, task.command, self._last_action)
            obs[idx] = fresh[idx]
            info["randomization"] = {k: v[idx] for k, v in self._params.values.items()} | {"envs": idx}
        self._obs[:] = obs
        return obs, reward, terminated, truncated, info

    def _set_damping(self, damping: np.ndarray) -> None:
        """Switch the actuators of worlds whose chain chose the damping backup to kp = 0, kd = the chain's
        damping_kd for this tick (the robot's e-stop mode), and worlds that left it back to their PD law."""
        change = np.flatnonzero(damping != self._damping)
        if change.size == 0:
            return
        p = self._params
        assert self._chain is not None  # damping is only ever requested by the chain
        kp, kd, lim = self._kp, self._kd, self._torque_limit
        for i in change:
            if damping[i]:
                write_pd(self._models[i], np.zeros_like(kp), self._chain.damping_kd * p["kd_scale"][i],
                         p["motor_strength"][i], lim)
            else:
                write_pd(self._models[i], kp * p["kp_scale"][i], kd * p["kd_scale"][i], p["motor_strength"][i], lim)
        self._damping[:] = damping

    def _unstable(self, ok: bool) -> np.ndarray:
        """Rows whose state is non-finite, exploded, or was reset inside the engine (time went back): restore them.
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

    def _episode_record(self, view: Any, i: int, terminated: bool, unstable: bool) -> dict[str, Any]:
        return {"return": float(self._ep_return[i]), "length": int(self._ep_step[i]),
                **self.task.episode_metrics(view, i, terminated), "fell": terminated and not unstable,
                "unstable": unstable}

    # ---- inspection --------------------------------------------------------------------------------------------
    def get_state(self) -> RobotState:
        """True (noise-free) batched state, copied; task quantities in `extras`."""
        return self.task.true_state(self.task.sense())

    def substep_joint_states(self) -> tuple[np.ndarray, np.ndarray]:
        """True joint positions and velocities (N, decimation, n) after every physics step of the last `step`
        (before auto-reset), e.g. to check joint limits at physics rate."""
        return self._out[:, :, self._jq].copy(), self._out[:, :, self._jv].copy()

    @property
    def safety_chain(self) -> Any:
        """The SafetyChain certifying every step (None when built with safety=False)."""
        return self._chain

    def use_safety_chain(self, chain: Any) -> None:
        """Certify with `chain` from now on (None: unfiltered), e.g. a bundle's own chain in evaluation."""
        self._chain = chain
        self._control.certifier = chain.certify_batch if chain is not None else None

    @property
    def control_step(self) -> ControlStep:
        """The control step of the last `step`: clipped action, decoded and certified targets, applied action."""
        return self._control

    @property
    def damping(self) -> np.ndarray:
        """(N,) bool: worlds whose actuators ran the damping backup during the last step."""
        return self._damping.copy()

    @property
    def commands(self) -> np.ndarray:
        return self.task.command.copy()

    def set_commands(self, commands: np.ndarray) -> None:
        """Override the current episode commands (evaluation at a fixed command, e.g. vx = 0.5 m/s)."""
        self.task.command[:] = commands

    @property
    def observed_state(self) -> RobotState:
        """What the policy and the safety chain saw at the last observation (the sensor model's output)."""
        return self._seen

    @property
    def physics(self) -> np.ndarray:
        """(N, nstate) full-physics state of every world (the env's own buffer: write only to set up a test)."""
        return self._state

    def physics_state(self, env: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """One world's full-physics state (mjSTATE_FULLPHYSICS) and the controls of its last physics step, copied
        (e.g. for a bare mj_step reference on the same states)."""
        return self._state[env].copy(), self._ctrl[env, -1].copy()

    def controls(self) -> np.ndarray:
        """(N, decimation, nu) the actuator targets of every physics step of the last `step`, copied."""
        return self._ctrl.copy()

    def sensordata(self) -> np.ndarray:
        """(N, decimation, nsensordata) sensor data of every physics step of the last `step`, copied."""
        return self._sens.copy()

    def model(self, env: int = 0) -> mujoco.MjModel:
        """The (randomized) model of one world; read-only by convention."""
        return self._models[env]

    @property
    def episode_params(self) -> dict[str, np.ndarray]:
        """Current per-world randomization values."""
        return self._params.as_dict()

    def render(self, env: int = 0, width: int = 640, height: int = 480) -> np.ndarray:
        """RGB frame (H, W, 3) uint8 of one world, from the task's camera."""
        if self._renderer is None or (self._renderer.width, self._renderer.height) != (width, height):
            if self._renderer is not None:
                self._renderer.close()
            self._renderer = mujoco.Renderer(self._nominal, height=height, width=width)
            self._render_data = mujoco.MjData(self._nominal)
        d = self._render_data
        assert d is not None
        m = self._models[env]
        mujoco.mj_setState(m, d, self._state[env], STATE_KIND)
        cam = self.task.render_scene(env, d)
        mujoco.mj_forward(m, d)
        self._renderer.update_scene(d, camera=cam)
        return self._renderer.render()

    def close(self) -> None:
        self.engine.close()
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
