"""The control step: what every control tick does between the policy's action and the joint targets sent out.

One implementation, batched over any leading shape (a robot is a batch of one, shape `()`), used by the
environments, the ROS 2 policy node, replay and the log tools:

    step = ControlStep(contract, batch_shape=(N,), certify=chain.certify_batch)   # codec: codec_for(contract)
    safe = step(action, state)        # = step.certify(state, *step.decode(action, state))

1. **clip** the raw action to the contract's `[-clip, clip]` box (`step.action`);
2. **decode** it to joint targets through an `ActionCodec` (`step.targets`);
3. **certify** the targets with the safety chain, when there is one (`step.safe`, telemetry in `step.info`);
4. **intervened**: a row is intervened when a certified target differs from its decoded one by more than
   `INTERVENTION_TOL` (a NaN difference counts) (`step.intervened`);
5. **encode** the applied action, the action the certified targets realise (`step.applied`): what the
   `last_action` observation term sees and what a learner stores. Without a chain it is the clipped action. With
   one, an exact codec (`ActionCodec.exact`: decode is affine, encode its inverse) encodes every row; an inexact
   one (a decode that clips to the joint range, an operational-space first-order inverse) encodes only the
   intervened rows and keeps the clipped action elsewhere, so rounding never moves an action the chain accepted.

An accelerated implementation (robot_rl.fused) may do steps 1-2 itself; it then calls `certify(state, action,
targets)` with its own clipped action and targets, and is verified against `decode` when it is built.

`ActionCodec` is the protocol for the action semantics; `codec_for(contract)` picks the registered codec of the
contract's action type (`register_codec`). The contract's joint-position actions are registered here; codecs that
need a robot model (operational-space `ee_delta`) register from where that model lives. Every buffer is allocated
once, at construction: a call allocates nothing itself (the chain's `certify` returns its own arrays).

This module does not import a simulator, rclpy or the safety package.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from numba import njit

from robot_rl.contract import PolicyContract
from robot_rl.errors import ContractError
from robot_rl.state import RobotState

INTERVENTION_TOL = 1e-9
"""Largest |certified - decoded| joint target difference (rad) that still counts as the chain leaving a target
alone. The one tolerance for "did the chain intervene", wherever it is asked."""

Certify = Callable[[RobotState, np.ndarray], tuple[np.ndarray, dict[str, Any]]]
"""A safety chain's certify: (state, targets) -> (safe targets of the same shape, telemetry)."""


class ActionCodec(Protocol):
    """Action semantics: policy action <-> joint position targets, batched over leading dims."""

    exact: bool
    """True when `encode(decode(a))` is `a` up to rounding everywhere in the action box (an affine decode): the
    applied action is then encoded from the certified targets on every row. False keeps the clipped action on rows
    the chain left alone."""

    def decode(self, action: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        """Joint targets (*batch, num_joints) of a clipped action (*batch, act_dim), written into `out`."""
        ...

    def encode(self, targets: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        """The action (*batch, act_dim) that realises these targets, written into `out` (may leave the box)."""
        ...


class OffsetCodec:
    """targets = offset(state) + scale * action; its inverse encodes (an affine decode: exact). The joint action
    types differ only in the offset."""

    exact = True

    def __init__(self, contract: PolicyContract, offset: Callable[[RobotState], np.ndarray]) -> None:
        _joint_width(contract)
        self.scale = float(contract.action.scale)
        self.offset = offset

    def decode(self, action: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        np.multiply(action, self.scale, out=out)
        out += self.offset(state)
        return out

    def encode(self, targets: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        np.subtract(targets, self.offset(state), out=out)
        out /= self.scale
        return out


class JointPositionCodec(OffsetCodec):
    """`joint_position`: targets = default + scale * action."""

    def __init__(self, contract: PolicyContract) -> None:
        self.default = np.asarray(contract.default_joint_pos, np.float64)
        super().__init__(contract, lambda state: self.default)


class JointDeltaCodec(OffsetCodec):
    """`joint_position_delta` without the joint-range clip: targets = measured joint positions + scale * action."""

    def __init__(self, contract: PolicyContract) -> None:
        super().__init__(contract, lambda state: state.joint_pos)


class RangedJointDeltaCodec:
    """`joint_position_delta` (the contract's codec for it): measured joint positions + scale * action, clipped to
    the contract's joint range, as every arm task decodes it (an arm's controller rejects targets outside the
    range). Clipping makes decoding not invertible at the range: inexact. Built from the contract alone, so the
    environment, the robot and replay decode alike."""

    exact = False

    def __init__(self, contract: PolicyContract) -> None:
        self._delta = JointDeltaCodec(contract)
        self.lower = np.asarray(contract.joint_pos_lower, np.float64)
        self.upper = np.asarray(contract.joint_pos_upper, np.float64)

    def decode(self, action: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        self._delta.decode(action, state, out)
        return np.clip(out, self.lower, self.upper, out=out)

    def encode(self, targets: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        return self._delta.encode(targets, state, out)


def _joint_width(contract: PolicyContract) -> None:
    if contract.act_dim != contract.num_joints:
        raise ContractError(f"action type {contract.action.type} with action.dim {contract.act_dim} != "
                            f"{contract.num_joints} joints needs its own codec")


CodecFactory = Callable[[PolicyContract], ActionCodec]
CODECS: dict[str, CodecFactory] = {"joint_position": JointPositionCodec,
                                   "joint_position_delta": RangedJointDeltaCodec}
"""Action type (ActionSpec.type) -> codec factory."""


def register_codec(action_type: str, factory: CodecFactory) -> None:
    """Make `codec_for` build `factory(contract)` for contracts whose action has this type."""
    CODECS[action_type] = factory


def codec_for(contract: PolicyContract) -> ActionCodec:
    """The registered codec of the contract's action type; ContractError naming the type when there is none."""
    factory = CODECS.get(contract.action.type)
    if factory is None:
        raise ContractError(f"action type {contract.action.type} has no registered codec "
                            f"(known: {', '.join(sorted(CODECS))})")
    return factory(contract)


class ControlStep:
    """Clip, decode, certify, encode: one control tick for a batch of robots (module docstring).

    The outputs live in buffers that the next call overwrites: `action` (clipped), `targets` (decoded), `safe`
    (certified), `applied` (encoded), `intervened` (*batch,) and `info` (the chain's telemetry; empty without one).
    """

    def __init__(self, contract: PolicyContract, batch_shape: tuple[int, ...] = (),
                 codec: ActionCodec | None = None, certify: Certify | None = None) -> None:
        self.contract = contract
        self.batch_shape = tuple(batch_shape)
        self.codec = codec if codec is not None else codec_for(contract)
        self.certifier = certify
        self.clip = float(contract.action.clip)
        n, a = contract.num_joints, contract.act_dim
        self.action = np.zeros((*self.batch_shape, a))
        self.targets = np.zeros((*self.batch_shape, n))
        self.safe = np.zeros((*self.batch_shape, n))
        self.applied = np.zeros((*self.batch_shape, a))
        self.intervened = np.zeros(self.batch_shape, bool)
        self.info: dict[str, Any] = {}
        self._encoded = np.zeros((*self.batch_shape, a))
        # 2-D views of the certify outputs for the compiled row check (views: writes land in the buffers above)
        self._rows_safe = self.safe.reshape(-1, n)
        self._rows_intervened = self.intervened.reshape(-1)

    def __call__(self, action: np.ndarray, state: RobotState) -> np.ndarray:
        """The certified targets for a raw policy action (`self.safe`)."""
        clipped, targets = self.decode(action, state)
        return self.certify(state, clipped, targets)

    def decode(self, action: np.ndarray, state: RobotState) -> tuple[np.ndarray, np.ndarray]:
        """Clip the raw action into `self.action` and decode it into `self.targets`; returns both."""
        a = np.asarray(action, dtype=np.float64)
        np.minimum(np.maximum(a, -self.clip, out=self.action), self.clip, out=self.action)  # = np.clip, NaN kept
        self.codec.decode(self.action, state, self.targets)
        return self.action, self.targets

    def certify(self, state: RobotState, action: np.ndarray, targets: np.ndarray) -> np.ndarray:
        """Certify decoded `targets` (from the clipped `action`), fill `safe`, `intervened`, `applied`, `info`."""
        if self.certifier is None:
            self.safe[...] = targets
            self.intervened[...] = False
            self.applied[...] = action
            self.info = {}
            return self.safe
        safe, self.info = self.certifier(state, targets)
        c = np.ascontiguousarray  # the same arrays when they already are (the chain's and the decode's are)
        _take_certified(c(safe, np.float64), c(targets, np.float64), INTERVENTION_TOL, self._rows_safe,
                        self._rows_intervened)
        if self.codec.exact:
            self.codec.encode(self.safe, state, self.applied)
        else:
            self.applied[...] = action
            if self.intervened.any():
                self.codec.encode(self.safe, state, self._encoded)
                np.copyto(self.applied, self._encoded, where=self.intervened[..., None])
        return self.safe

    def encode(self, targets: np.ndarray, state: RobotState) -> np.ndarray:
        """The applied action of targets that did not come through `certify` (a backup tick, a logged command),
        in a buffer the next call overwrites."""
        return self.codec.encode(targets, state, self._encoded)


@njit(cache=True, nogil=True)
def _take_certified(safe: np.ndarray, targets: np.ndarray, tol: float, out: np.ndarray,
                    intervened: np.ndarray) -> None:
    """Copy certified rows (`safe`, `targets`: (n,) or (N, n), C-contiguous) into `out` (N, n) and flag the rows
    where some |safe - target| is not <= tol (NaN included): one compiled pass instead of six numpy calls, which
    dominate a robot's tick of twelve joints."""
    n = out.shape[1]
    rows_safe, rows_targets = safe.reshape((-1, n)), targets.reshape((-1, n))  # (n,) or (N, n): no copy
    for i in range(out.shape[0]):
        hit = False
        for j in range(n):
            value = rows_safe[i, j]
            out[i, j] = value
            if not abs(value - rows_targets[i, j]) <= tol:
                hit = True
        intervened[i] = hit


def intervened(targets: np.ndarray, safe: np.ndarray) -> np.ndarray:
    """Per row (*batch,): does any certified target differ from its decoded one by more than INTERVENTION_TOL (a
    NaN difference counts)? For code that holds targets but no ControlStep (logs, evaluators)."""
    close = np.abs(np.asarray(safe, np.float64) - np.asarray(targets, np.float64)) <= INTERVENTION_TOL
    return ~np.all(close, axis=-1)
