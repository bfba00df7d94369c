"""The first half of the control step in one compiled call, for the control loop of a deployed MLP policy.

The reference path of a tick is `Observer` -> `Bundle.act` (normalize + onnxruntime) -> `ControlStep.decode`
(clip, decode) -> `ControlStep.certify`: about fifteen numpy calls before the chain, an onnxruntime session call and
their Python glue. Each is cheap in a hot loop, but a 500 Hz control tick starts with cold caches (it follows 2 ms of
idle or of other processes). `FusedPolicy.decode` does everything before `certify` in one numba-compiled function:
observation terms, scale and clip, normalization, the MLP read from the bundle's ONNX graph
(robot_rl.bundle.read_mlp), the action clip and the joint-position codecs' decode. The caller hands its clipped
action and targets to `ControlStep.certify`, so the chain, `intervened` and the applied action are the step's own.

It only takes what it can reproduce exactly: observation terms from `FUSED_TERMS` without history, an ONNX graph
that is a chain of Gemm (+ Elu / Relu / Tanh) layers, and joint-position actions. `FusedPolicy.build` returns None
otherwise (the caller keeps the reference path), and it refuses a bundle whose fused output differs from the
reference path on random inputs, so the fast path can never deploy a different policy than the bundle.
`FusedObserver` is the observation part alone, batched: the vectorized environments' drop-in for the contract's
Observer.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numba import njit

from robot_rl.bundle import ONNX_FILE, read_mlp
from robot_rl.contract import PolicyContract
from robot_rl.control_step import ControlStep
from robot_rl.errors import BundleError
from robot_rl.state import RobotState

FUSED_TERMS = {"base_ang_vel": 0, "projected_gravity": 1, "command": 2, "joint_pos_rel": 3, "joint_pos": 4,
               "joint_vel": 5, "last_action": 6}
"""Observation terms the kernel computes (code = its branch in `_observe`); any other term keeps the reference
path."""
TOLERANCE = 1e-4
"""Largest |fused - reference| action difference (float32 network) accepted when the bundle is checked."""


@njit(cache=True, nogil=True)
def _observe(q: np.ndarray, qd: np.ndarray, quat: np.ndarray, gyro: np.ndarray, cmd: np.ndarray,
             last_action: np.ndarray, default: np.ndarray, codes: np.ndarray, offsets: np.ndarray,
             scale: np.ndarray, clip: np.ndarray, obs: np.ndarray) -> None:
    """One robot's observation into `obs` (float32), as `Observer`: terms in contract order, then scale and clip."""
    for t in range(codes.shape[0]):
        code, o = codes[t], offsets[t]
        if code == 0:
            for i in range(3):
                obs[o + i] = gyro[i]
        elif code == 1:  # R(q)^T (0, 0, -1), as robot_rl.state.projected_gravity
            w, x, y, z = quat[0], quat[1], quat[2], quat[3]
            obs[o] = -2.0 * (x * z - w * y)
            obs[o + 1] = -2.0 * (y * z + w * x)
            obs[o + 2] = 2.0 * (x * x + y * y) - 1.0
        elif code == 2:
            for i in range(cmd.shape[0]):
                obs[o + i] = cmd[i]
        elif code == 3:
            for i in range(q.shape[0]):
                obs[o + i] = q[i] - default[i]
        elif code == 4:
            for i in range(q.shape[0]):
                obs[o + i] = q[i]
        elif code == 5:
            for i in range(qd.shape[0]):
                obs[o + i] = qd[i]
        else:
            for i in range(last_action.shape[0]):
                obs[o + i] = last_action[i]
    for i in range(obs.shape[0]):
        v = obs[i] * scale[i]
        if v == v:  # np.clip keeps a NaN (the safety chain's sanity check must see it)
            v = min(max(v, -clip[i]), clip[i])
        obs[i] = v


@njit(cache=True, nogil=True)
def observe_batch(q: np.ndarray, qd: np.ndarray, quat: np.ndarray, gyro: np.ndarray, cmd: np.ndarray,
                  last_action: np.ndarray, default: np.ndarray, codes: np.ndarray, offsets: np.ndarray,
                  scale: np.ndarray, clip: np.ndarray, obs: np.ndarray) -> None:
    """`_observe` for each row of a batch (N, ...) into obs (N, obs_dim)."""
    for e in range(q.shape[0]):
        _observe(q[e], qd[e], quat[e], gyro[e], cmd[e], last_action[e], default, codes, offsets, scale, clip, obs[e])


@njit(cache=True, nogil=True)
def _tick(q: np.ndarray, qd: np.ndarray, quat: np.ndarray, gyro: np.ndarray, cmd: np.ndarray,
          last_action: np.ndarray, default: np.ndarray, codes: np.ndarray, offsets: np.ndarray,
          scale: np.ndarray, clip: np.ndarray, mean: np.ndarray, inv_std: np.ndarray,
          weights: Any, biases: Any, acts: np.ndarray, act_scale: float, act_clip: float, delta: bool,
          lower: np.ndarray, upper: np.ndarray, obs: np.ndarray, hidden: np.ndarray, action: np.ndarray,
          clipped: np.ndarray, targets: np.ndarray) -> None:
    _observe(q, qd, quat, gyro, cmd, last_action, default, codes, offsets, scale, clip, obs)
    # normalize into the first hidden buffer
    n_obs = obs.shape[0]
    x = hidden[0]
    for i in range(n_obs):
        x[i] = (obs[i] - mean[i]) * inv_std[i]
    # layers: y = W x + b, then the activation (axpy order: vectorizes without reassociating sums)
    n_in = n_obs
    for k in range(len(weights)):
        w_t, b = weights[k], biases[k]
        y = hidden[(k + 1) % 2]
        n_out = b.shape[0]
        for j in range(n_out):
            y[j] = b[j]
        for i in range(n_in):
            xi = x[i]
            for j in range(n_out):
                y[j] += xi * w_t[i, j]
        a = acts[k]
        if a == 1:
            for j in range(n_out):
                if y[j] < 0.0:
                    y[j] = np.float32(math.expm1(y[j]))
        elif a == 2:
            for j in range(n_out):
                y[j] = max(y[j], np.float32(0.0))
        elif a == 3:
            for j in range(n_out):
                y[j] = np.float32(math.tanh(y[j]))
        x, n_in = y, n_out
    # ControlStep.decode with the joint-position codecs: clip (NaN kept), scale, around the default pose or the
    # current one (deltas then clipped to the joint range, NaN kept)
    for j in range(action.shape[0]):
        action[j] = x[j]
        a64 = float(x[j])
        if a64 == a64:
            a64 = min(max(a64, -act_clip), act_clip)
        clipped[j] = a64
        targets[j] = act_scale * a64 + (q[j] if delta else default[j])
        if delta and targets[j] == targets[j]:
            targets[j] = min(max(targets[j], lower[j]), upper[j])


@dataclass
class FusedPolicy:
    """Compiled observation, network and `ControlStep.decode` for one bundle: `decode(state, command, last_action)`
    returns (clipped action, joint targets) for `ControlStep.certify`; the observation and the raw network action of
    the last call stay readable in `.obs` and `.action` (the node records them)."""

    contract: PolicyContract
    _args: tuple[Any, ...]
    """Everything `_tick` takes after the state: constants, weights, then the output buffers below."""
    obs: np.ndarray
    action: np.ndarray
    clipped: np.ndarray
    _targets: np.ndarray

    @classmethod
    def build(cls, bundle: Any, check: bool = True) -> FusedPolicy | None:
        """The fused tick for `bundle` (a robot_rl.bundle.Bundle), or None when the bundle is outside what the
        kernel reproduces. With `check`, a mismatch against the bundle's own path raises (never silently differs)."""
        c: PolicyContract = bundle.contract
        if c.action.type not in ("joint_position", "joint_position_delta") or c.act_dim != c.num_joints:
            return None
        layout = obs_layout(c)
        if layout is None:
            return None
        layers = mlp_layers(Path(bundle.path) / ONNX_FILE)
        if layers is None or layers[0][0].shape[0] != c.obs_dim or layers[-1][0].shape[1] != c.act_dim:
            return None
        f32 = np.float32
        mean = np.zeros(c.obs_dim, f32) if c.obs_mean is None else np.asarray(c.obs_mean, f32)
        inv_std = np.ones(c.obs_dim, f32) if c.obs_std is None else (1.0 / np.asarray(c.obs_std, f32)).astype(f32)
        width = max(max(w.shape[1] for w, _, _ in layers), c.obs_dim)
        args = (*layout, mean, inv_std, tuple(w for w, _, _ in layers), tuple(b for _, b, _ in layers),
                np.array([a for _, _, a in layers], np.int64), float(c.action.scale), float(c.action.clip),
                c.action.type == "joint_position_delta", np.asarray(c.joint_pos_lower, np.float64),
                np.asarray(c.joint_pos_upper, np.float64))
        obs, hidden = np.zeros(c.obs_dim, f32), np.zeros((2, width), f32)
        action, clipped, targets = np.zeros(c.act_dim, f32), np.zeros(c.act_dim), np.zeros(c.num_joints)
        fused = cls(c, (*args, obs, hidden, action, clipped, targets), obs, action, clipped, targets)
        if check:
            fused.verify(bundle)
        return fused

    def decode(self, state: RobotState, command: np.ndarray,
               last_action: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(clipped action, joint targets) for this state, in arrays the next call reuses (copy them to keep them)."""
        _tick(state.joint_pos, state.joint_vel, state.base_quat, state.base_ang_vel, command, last_action, *self._args)
        return self.clipped, self._targets

    def verify(self, bundle: Any, samples: int = 64, seed: int = 0) -> float:
        """Largest difference from the reference path (Observer -> Bundle.act -> ControlStep.decode) over random
        states; raises ValueError above TOLERANCE."""
        c = self.contract
        rng = np.random.default_rng(seed)
        observer = c.make_observer()
        step = ControlStep(c)
        n = c.num_joints
        worst = 0.0
        for _ in range(samples):
            quat = rng.standard_normal(4)
            state = RobotState(joint_pos=np.asarray(c.default_joint_pos) + 0.3 * rng.standard_normal(n),
                               joint_vel=2.0 * rng.standard_normal(n), base_quat=quat / np.linalg.norm(quat),
                               base_ang_vel=rng.standard_normal(3), base_lin_acc=np.zeros(3))
            cmd = rng.uniform(-1.0, 1.0, len(c.command_names))
            last = rng.uniform(-1.0, 1.0, c.act_dim)
            observer.reset()
            obs = observer(state, cmd, last)
            action = bundle.act(obs)
            ref_clipped, ref = step.decode(action, state)
            clipped, got = self.decode(state, cmd, last)
            worst = max(worst, float(np.max(np.abs(self.action - action))), float(np.max(np.abs(self.obs - obs))),
                        float(np.max(np.abs(clipped - ref_clipped))))
            if not np.allclose(got, ref, rtol=0.0, atol=TOLERANCE * c.action.scale):
                raise ValueError(f"fused tick differs from the bundle by {np.max(np.abs(got - ref)):.3g}")
        if worst > TOLERANCE:
            raise ValueError(f"fused tick differs from the bundle by {worst:.3g}")
        return worst


def obs_layout(contract: PolicyContract) -> tuple[np.ndarray, ...] | None:
    """(default pose, term codes, term offsets, per-entry scale, per-entry clip): what the observation kernels read,
    or None when a term is not in FUSED_TERMS or keeps a history."""
    c = contract
    if any(t.name not in FUSED_TERMS or t.history > 1 for t in c.obs_terms):
        return None
    bounds = np.cumsum([0] + [t.dim for t in c.obs_terms])
    f32 = np.float32
    return (np.asarray(c.default_joint_pos, float), np.array([FUSED_TERMS[t.name] for t in c.obs_terms], np.int64),
            bounds[:-1].astype(np.int64), np.concatenate([np.full(t.dim, t.scale, f32) for t in c.obs_terms]),
            np.concatenate([np.full(t.dim, t.clip, f32) for t in c.obs_terms]))


class FusedObserver:
    """`contract.make_observer((N,))` for contracts whose terms the kernel computes (no history, no `extra.*`):
    the same float32 observations, bit for bit, in one compiled call per batch instead of a numpy call per term.
    The vectorized environments use it; everything else keeps `Observer`."""

    def __init__(self, contract: PolicyContract, num: int, layout: tuple[np.ndarray, ...]) -> None:
        self.contract = contract
        self._layout = layout
        self._out = np.zeros((num, contract.obs_dim), np.float32)

    @classmethod
    def build(cls, contract: PolicyContract, num: int) -> FusedObserver | None:
        layout = obs_layout(contract)
        return None if layout is None else cls(contract, num, layout)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """No term keeps a history: nothing to forget."""

    def __call__(self, state: RobotState, command: np.ndarray, last_action: np.ndarray) -> np.ndarray:
        c = np.ascontiguousarray
        args = (c(state.joint_pos), c(state.joint_vel), c(state.base_quat), c(state.base_ang_vel), c(command),
                c(last_action), *self._layout, self._out)
        observe_batch(*args)
        return self._out.copy()


def mlp_layers(onnx_path: Path) -> list[tuple[np.ndarray, np.ndarray, int]] | None:
    """robot_rl.bundle.read_mlp, or None for a graph the kernel does not run (the caller keeps the reference path)."""
    try:
        return read_mlp(onnx_path)
    except BundleError:
        return None
