"""Observation terms: pure functions of (RobotState, command, last action), batched over leading dims.

The same functions build observations in the simulator, in the ROS 2 policy node and in the log reader, which is what
makes a deployed observation identical to the trained one. A term is looked up by the name stored in the contract.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from robot_rl.state import RobotState, projected_gravity


@dataclass(frozen=True)
class TermInputs:
    state: RobotState
    command: np.ndarray
    last_action: np.ndarray
    default_joint_pos: np.ndarray


TermFn = Callable[[TermInputs], np.ndarray]
_TERMS: dict[str, TermFn] = {}
_READS: dict[str, tuple[str, ...]] = {}


def register_term(name: str, reads: tuple[str, ...] = ()) -> Callable[[TermFn], TermFn]:
    """Register a term; `reads` names the RobotState fields it reads (what a robot must measure to build it)."""
    def deco(fn: TermFn) -> TermFn:
        _TERMS[name] = fn
        _READS[name] = reads
        return fn

    return deco


def state_fields(names: list[str]) -> set[str]:
    """The RobotState fields the named terms read (`extra.<key>` reads `extras`); e.g. a contract without base
    orientation terms needs no IMU."""
    return {f for n in names for f in (("extras",) if n.startswith("extra.") else _READS.get(n, ()))}


def get_term(name: str) -> TermFn:
    """A registered term, or `extra.<key>` which reads `state.extras[key]` (task quantities such as object pose)."""
    if name in _TERMS:
        return _TERMS[name]
    if name.startswith("extra."):
        key = name[len("extra."):]
        return lambda x: x.state.extras[key]
    raise KeyError(name)


def known_terms() -> list[str]:
    return sorted(_TERMS) + ["extra.<key>"]


@register_term("base_ang_vel", reads=("base_ang_vel",))
def base_ang_vel(x: TermInputs) -> np.ndarray:
    return x.state.base_ang_vel


@register_term("projected_gravity", reads=("base_quat",))
def gravity(x: TermInputs) -> np.ndarray:
    return projected_gravity(x.state.base_quat)


@register_term("command")
def command(x: TermInputs) -> np.ndarray:
    return x.command


@register_term("joint_pos_rel", reads=("joint_pos",))
def joint_pos_rel(x: TermInputs) -> np.ndarray:
    return x.state.joint_pos - x.default_joint_pos


@register_term("joint_pos", reads=("joint_pos",))
def joint_pos(x: TermInputs) -> np.ndarray:
    return x.state.joint_pos


@register_term("joint_vel", reads=("joint_vel",))
def joint_vel(x: TermInputs) -> np.ndarray:
    return x.state.joint_vel


@register_term("last_action")
def last_action(x: TermInputs) -> np.ndarray:
    return x.last_action


@register_term("base_lin_vel", reads=("base_lin_vel",))
def base_lin_vel(x: TermInputs) -> np.ndarray:
    if x.state.base_lin_vel is None:
        raise ValueError("observation term base_lin_vel needs RobotState.base_lin_vel (a state estimator)")
    return x.state.base_lin_vel


@register_term("contacts", reads=("contacts",))
def contacts(x: TermInputs) -> np.ndarray:
    if x.state.contacts is None:
        raise ValueError("observation term contacts needs RobotState.contacts")
    return x.state.contacts.astype(np.float64)
