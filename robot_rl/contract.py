"""The policy contract: everything a deployment must agree on with training, as one validated, versioned JSON.

The trainer writes it, the cross-simulator check and the ROS 2 nodes read it; observation building and action
decoding go through `Observer` and `PolicyContract.act`, so no side can drift from the other.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from robot_rl.atomic import write_text
from robot_rl.config import from_dict, to_dict
from robot_rl.errors import ConfigError, ContractError
from robot_rl.observations import TermInputs, get_term
from robot_rl.state import RobotState

CONTRACT_VERSION = 1


@dataclass(frozen=True)
class ObsTerm:
    name: str
    """Registered observation term (robot_rl.observations) or `extra.<key>`."""
    dim: int
    """Width of one sample of the term."""
    scale: float = 1.0
    """Multiplier applied before normalization (legged_gym-style obs scales)."""
    history: int = 1
    """Number of most recent samples stacked, newest first."""
    clip: float = 100.0
    """Symmetric clip after scaling, guards the network against sensor spikes."""


@dataclass(frozen=True)
class ActionSpec:
    type: Literal["joint_position", "joint_position_delta", "ee_delta"] = "joint_position"
    """joint_position: q_des = default + scale * a; joint_position_delta: q_des = q + scale * a clipped to the joint
    range; ee_delta: end-effector displacement handled by controllers.osc."""
    scale: float = 0.25
    clip: float = 1.0
    """Actions are clipped to [-clip, clip] before scaling."""
    dim: int = 0
    """Action width; 0 means one per joint."""
    gripper: bool = False
    """Last action component commands a gripper (manipulation)."""


@dataclass(frozen=True)
class PolicyContract:
    robot: str
    joint_names: list[str]
    default_joint_pos: list[float]
    joint_pos_lower: list[float]
    joint_pos_upper: list[float]
    joint_vel_limit: list[float]
    torque_limit: list[float]
    kp: list[float]
    kd: list[float]
    policy_rate_hz: float = 50.0
    physics_rate_hz: float = 200.0
    action: ActionSpec = field(default_factory=ActionSpec)
    obs_terms: list[ObsTerm] = field(default_factory=list)
    obs_mean: list[float] | None = None
    obs_std: list[float] | None = None
    command_names: list[str] = field(default_factory=list)
    command_ranges: list[tuple[float, float]] = field(default_factory=list)
    safety: list[dict[str, Any]] = field(default_factory=list)
    """Ordered safety-chain configuration (robot_rl.safety.build_chain)."""
    provenance: dict[str, Any] = field(default_factory=dict)
    version: int = CONTRACT_VERSION

    def __post_init__(self) -> None:
        n = len(self.joint_names)
        if n == 0:
            raise ContractError("contract has no joints")
        if len(set(self.joint_names)) != n:
            raise ContractError("contract joint_names contain duplicates")
        for name in ("default_joint_pos", "joint_pos_lower", "joint_pos_upper", "joint_vel_limit",
                     "torque_limit", "kp", "kd"):
            if len(getattr(self, name)) != n:
                raise ContractError(f"contract {name} has {len(getattr(self, name))} values for {n} joints")
        lo, hi = np.asarray(self.joint_pos_lower), np.asarray(self.joint_pos_upper)
        bad = np.flatnonzero(lo >= hi)
        if bad.size:
            raise ContractError(f"contract joint_pos_lower >= joint_pos_upper for {self.joint_names[bad[0]]}")
        for name in ("joint_vel_limit", "torque_limit"):
            if np.any(np.asarray(getattr(self, name)) <= 0):
                raise ContractError(f"contract {name} must be positive")
        if np.any(np.asarray(self.kp) < 0) or np.any(np.asarray(self.kd) < 0):
            raise ContractError("contract PD gains must be non-negative")
        if self.policy_rate_hz <= 0 or self.physics_rate_hz <= 0:
            raise ContractError("contract rates must be positive")
        ratio = self.physics_rate_hz / self.policy_rate_hz
        if abs(ratio - round(ratio)) > 1e-9 or round(ratio) < 1:
            raise ContractError(f"physics_rate_hz {self.physics_rate_hz} is not a multiple of "
                                f"policy_rate_hz {self.policy_rate_hz}")
        if len(self.command_ranges) != len(self.command_names):
            raise ContractError("contract command_ranges must have one (low, high) per command name")
        for term in self.obs_terms:
            try:
                get_term(term.name)
            except KeyError:
                raise ContractError(f"contract observation term '{term.name}' is not known") from None
            if term.dim <= 0 or term.history < 1:
                raise ContractError(f"contract observation term '{term.name}' needs dim > 0 and history >= 1")
        for stats in (self.obs_mean, self.obs_std):
            if stats is not None and len(stats) != self.obs_dim:
                raise ContractError(f"contract normalization has {len(stats)} values for obs_dim {self.obs_dim}")
        if self.version != CONTRACT_VERSION:
            raise ContractError(f"contract version {self.version} is not supported (expected {CONTRACT_VERSION})")

    # ---- derived sizes -------------------------------------------------------------------------------------
    @property
    def num_joints(self) -> int:
        return len(self.joint_names)

    @property
    def decimation(self) -> int:
        return int(round(self.physics_rate_hz / self.policy_rate_hz))

    @property
    def policy_dt(self) -> float:
        return 1.0 / self.policy_rate_hz

    @property
    def obs_dim(self) -> int:
        return sum(t.dim * t.history for t in self.obs_terms)

    @property
    def act_dim(self) -> int:
        return self.action.dim or self.num_joints

    # ---- actions -------------------------------------------------------------------------------------------
    def act(self, action: np.ndarray, state: RobotState | None = None) -> np.ndarray:
        """Decode a policy action into joint position targets (batched over leading dims)."""
        a = np.clip(np.asarray(action, dtype=np.float64), -self.action.clip, self.action.clip)
        n = self.num_joints
        if self.action.type == "joint_position":
            return np.asarray(self.default_joint_pos) + self.action.scale * a[..., :n]
        if self.action.type == "joint_position_delta":
            if state is None:
                raise ContractError("joint_position_delta actions need the current RobotState")
            return np.clip(np.asarray(state.joint_pos)[..., :n] + self.action.scale * a[..., :n],
                           self.joint_pos_lower, self.joint_pos_upper)
        raise ContractError(f"action type {self.action.type} is decoded by its controller, not by the contract")

    def applied_action(self, targets: np.ndarray, state: RobotState | None = None) -> np.ndarray:
        """The action that realises these (certified) joint targets: the inverse of `act`.

        This is what the `last_action` observation term sees, in training and on the robot alike: after the safety
        chain, and never the raw network output (which is unbounded and would feed back on itself).
        """
        t = np.asarray(targets, dtype=np.float64)[..., :self.num_joints]
        if self.action.type == "joint_position":
            return (t - np.asarray(self.default_joint_pos)) / self.action.scale
        if self.action.type == "joint_position_delta":
            if state is None:
                raise ContractError("joint_position_delta actions need the current RobotState")
            return (t - np.asarray(state.joint_pos)[..., :self.num_joints]) / self.action.scale
        raise ContractError(f"action type {self.action.type} is encoded by its controller, not by the contract")

    def normalize(self, obs: np.ndarray) -> np.ndarray:
        if self.obs_mean is None or self.obs_std is None:
            return obs
        return (obs - np.asarray(self.obs_mean, np.float32)) / np.asarray(self.obs_std, np.float32)

    def make_observer(self, batch_shape: tuple[int, ...] = ()) -> Observer:
        return Observer(self, batch_shape)

    # ---- compatibility -------------------------------------------------------------------------------------
    def check_robot(self, robot: str | None = None, joint_names: list[str] | None = None,
                    physics_rate_hz: float | None = None) -> None:
        """Refuse a robot whose name, joints or rates differ from this contract, naming the mismatch."""
        if robot is not None and robot != self.robot:
            raise ContractError(f"contract is for robot '{self.robot}', not '{robot}'")
        if joint_names is not None:
            missing = [j for j in self.joint_names if j not in joint_names]
            if missing:
                raise ContractError(f"robot lacks contract joints: {', '.join(missing)}")
            if len(joint_names) != self.num_joints:
                extra = [j for j in joint_names if j not in self.joint_names]
                raise ContractError(f"robot has joints the contract does not: {', '.join(extra)}")
        if physics_rate_hz is not None and abs(physics_rate_hz - self.physics_rate_hz) > 1e-6:
            raise ContractError(f"contract physics rate {self.physics_rate_hz} Hz != robot {physics_rate_hz} Hz")

    # ---- serialization -------------------------------------------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = to_dict(self)
        return out

    def to_json(self, path: str | Path | None = None) -> str:
        text = json.dumps(self.to_dict(), indent=2)
        if path is not None:
            write_text(path, text)
        return text

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PolicyContract:
        try:
            return from_dict(cls, data)
        except ConfigError as exc:
            raise ContractError(f"invalid contract: {exc}") from None

    @classmethod
    def load(cls, path: str | Path) -> PolicyContract:
        path = Path(path)
        try:
            data = json.loads(path.read_text())
        except FileNotFoundError:
            raise ContractError(f"contract not found: {path}") from None
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise ContractError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise ContractError(f"{path}: contract must be a JSON object")
        return cls.from_dict(data)

    def replace(self, **changes: Any) -> PolicyContract:
        return dataclasses.replace(self, **changes)


class Observer:
    """Builds (batched) observations from RobotState through the contract's terms, keeping term histories.

    Returns raw (un-normalized) float32 observations; `PolicyContract.normalize` applies the bundle statistics.
    Terms are written into one buffer and scaled/clipped by two vector operations: the ROS 2 policy node calls this
    every tick, so per-term numpy calls are kept to the one assignment each.
    """

    def __init__(self, contract: PolicyContract, batch_shape: tuple[int, ...] = ()) -> None:
        self.contract = contract
        self.batch_shape = batch_shape
        terms = contract.obs_terms
        self._fns = [get_term(t.name) for t in terms]
        self._default = np.asarray(contract.default_joint_pos)
        # one current sample of every term, side by side
        bounds = np.cumsum([0] + [t.dim for t in terms])
        self._cur_slices = [slice(int(a), int(b)) for a, b in zip(bounds[:-1], bounds[1:])]
        self._dims = [t.dim for t in terms]
        self._scale = np.concatenate([np.full(t.dim, t.scale, np.float32) for t in terms] or [np.ones(0, np.float32)])
        self._clip = np.concatenate([np.full(t.dim, t.clip, np.float32) for t in terms] or [np.ones(0, np.float32)])
        self._cur = np.zeros((*batch_shape, int(bounds[-1])), np.float32)
        self._has_history = any(t.history > 1 for t in terms)
        self._out = np.zeros((*batch_shape, contract.obs_dim), np.float32)
        # history[k] has shape (*batch, H_k, dim_k), newest sample at index 0
        self._hist = [np.zeros((*batch_shape, t.history, t.dim), np.float32) if t.history > 1 else None
                      for t in terms]
        self._fresh = np.ones(batch_shape, bool)

    def reset(self, mask: np.ndarray | None = None) -> None:
        """Forget the history of the selected environments (all when mask is None)."""
        if mask is None:
            self._fresh[...] = True
        else:
            self._fresh[mask] = True

    def __call__(self, state: RobotState, command: np.ndarray, last_action: np.ndarray) -> np.ndarray:
        inputs = TermInputs(state=state, command=command, last_action=last_action,
                            default_joint_pos=self._default)
        cur = self._cur
        for term, fn, sl, dim in zip(self.contract.obs_terms, self._fns, self._cur_slices, self._dims):
            value = fn(inputs)
            if np.shape(value)[-1:] != (dim,):
                raise ContractError(f"observation term '{term.name}' has width {np.shape(value)[-1:]}, "
                                    f"contract says {dim}")
            cur[..., sl] = value
        np.multiply(cur, self._scale, out=cur)
        np.clip(cur, -self._clip, self._clip, out=cur)
        if not self._has_history:
            self._fresh[...] = False
            return cur.copy()
        fresh = self._fresh
        col = 0
        for term, sl, hist in zip(self.contract.obs_terms, self._cur_slices, self._hist):
            value = cur[..., sl]
            if hist is None:
                self._out[..., col:col + term.dim] = value
                col += term.dim
                continue
            hist[..., 1:, :] = hist[..., :-1, :]
            hist[..., 0, :] = value
            if fresh.ndim == 0:
                if fresh:
                    hist[...] = value
            elif fresh.any():
                hist[fresh] = value[fresh][:, None, :]
            width = term.dim * term.history
            self._out[..., col:col + width] = hist.reshape(*self.batch_shape, width)
            col += width
        self._fresh[...] = False
        return self._out.copy()
