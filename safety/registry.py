"""Every `{"type": ...}` entry of `contract.safety`: the shields the chain always runs first, and the filters.

Adding a filter is one entry in `FILTERS`: its config dataclass and how to build it (safety/protocol.py `Filter`).
"""

from __future__ import annotations

from robot_rl.safety.cbf import CbfFilter
from robot_rl.safety.config import (
    CbfConfig,
    PassivityConfig,
    RateLimitConfig,
    SanityConfig,
    StateShieldConfig,
)
from robot_rl.safety.passivity import PassivityFilter
from robot_rl.safety.protocol import FilterSpec
from robot_rl.safety.shields import RateLimiter

SHIELDS: dict[str, type] = {"sanity": SanityConfig, "state": StateShieldConfig}
"""Shield name -> config. The chain checks inputs and state before any filter; these entries only tune that."""

FILTERS: dict[str, FilterSpec] = {
    "rate_limit": FilterSpec(RateLimitConfig, RateLimiter),
    "cbf": FilterSpec(CbfConfig, CbfFilter),
    "passivity": FilterSpec(PassivityConfig, PassivityFilter),
}
"""Filter name -> (config, builder); the chain runs them in contract order."""


def config_class(name: str) -> type | None:
    """The config dataclass of a contract.safety `type` (None: unknown)."""
    if name in SHIELDS:
        return SHIELDS[name]
    spec = FILTERS.get(name)
    return None if spec is None else spec.config


def entry_names() -> list[str]:
    """Every known `type`, shields first."""
    return [*SHIELDS, *FILTERS]
