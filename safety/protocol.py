"""The filter protocol: a filter certifies a batch of robots; one robot is a batch of one.

The chain (safety/chain.py) hands every filter the same `Batch` and the targets the previous filter certified; the
filter returns `Certified`: the targets it certifies, per-robot telemetry, the rows it could not certify (the chain
applies its backup to them) and, optionally, the set it certified into, which the chain passes on to the following
filters (the passivity filter scales towards a point inside the CBF's set). After the chain has chosen what is
applied, every filter is told through `commit`, and `reset` forgets the state of selected robots.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from robot_rl.contract import PolicyContract
from robot_rl.state import RobotState


class FeasibleSet(Protocol):
    """A set of targets a filter certified into, for the filters after it."""

    def reference(self, q: np.ndarray) -> np.ndarray:
        """(N, n) targets inside the set close to the positions q (N, n): a passive reference."""
        ...


@dataclass(slots=True)
class Batch:
    """The robots a filter certifies on this tick (N rows of n joints)."""

    q: np.ndarray
    """(N, n) joint positions; rows the chain replaces by its backup (and non-finite entries) hold 0."""
    v: np.ndarray
    """(N, n) joint velocities, cleaned like `q`."""
    feasible: FeasibleSet | None = None
    """The set certified by the last filter before this one that declared one (None: no such filter)."""


@dataclass(slots=True)
class Certified:
    """What a filter returns for a batch."""

    targets: np.ndarray
    """(N, n) certified targets."""
    info: dict[str, np.ndarray]
    """Telemetry, one (N,) array per key (`<filter>/<what>`)."""
    failed: np.ndarray | None = None
    """(N,) rows this filter could not certify (the chain applies its backup to them); None: none."""
    feasible: FeasibleSet | None = None
    """The set the targets were certified into, handed to the following filters; None: this filter declares none."""


class Filter(Protocol):
    """A safety filter in the chain: certify a batch, learn what was applied, forget selected robots."""

    name: str
    """The `type` of its contract.safety entry."""

    def certify(self, batch: Batch, targets: np.ndarray) -> Certified:
        """Certified targets (N, n) for `targets` (N, n); must not change the filter's state."""
        ...

    def commit(self, state: RobotState, applied: np.ndarray) -> dict[str, np.ndarray]:
        """The targets (N, n) the chain finally applied for the batched `state`; returns telemetry (may be empty)."""
        ...

    def reset(self, mask: np.ndarray | None) -> None:
        """Forget the state of the selected robots (all when mask is None)."""
        ...


@dataclass(frozen=True)
class FilterSpec:
    """A registered filter: its config dataclass and how to build it."""

    config: type
    """The frozen dataclass of its contract.safety entry (parsed strictly, then `validate`d)."""
    build: Callable[[PolicyContract, Any], Filter]
    """(contract, config) -> the filter."""


def row_norms(x: np.ndarray) -> np.ndarray:
    """Euclidean norm of each row of x (N, m); one row through a dot product (cheaper than einsum for one robot)."""
    if x.shape[0] == 1:
        row = x[0]
        return np.array([math.sqrt(row @ row)])
    return np.sqrt(np.einsum("ij,ij->i", x, x))


def selected(mask: np.ndarray | None, num: int) -> slice | np.ndarray:
    """Index of the robots `reset(mask)` forgets among `num` (every one when mask is None; none when the mask is
    for a batch of another size, e.g. before the first batched tick)."""
    if mask is None:
        return slice(None)
    return mask if np.shape(mask)[0] == num else slice(0)
