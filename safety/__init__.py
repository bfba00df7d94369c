"""Safety layer: shields, CBF-QP filter, energy-tank passivity filter, the chain and its telemetry.

`build_chain(contract)` reads the ordered `contract.safety` entries; see docs/safety.md.
"""

from robot_rl.safety.cbf import RELAX_LEVELS, CbfFilter
from robot_rl.safety.chain import SafetyChain, build_chain, parse_safety
from robot_rl.safety.config import (
    CbfConfig,
    PassivityConfig,
    RateLimitConfig,
    SanityConfig,
    StateShieldConfig,
    WorkspaceConfig,
)
from robot_rl.safety.coupled import CoupledModel
from robot_rl.safety.kinematics import JointSpaceDynamics, SerialChain
from robot_rl.safety.passivity import PassivityFilter
from robot_rl.safety.protocol import Batch, Certified, FeasibleSet, Filter, FilterSpec
from robot_rl.safety.registry import FILTERS, SHIELDS
from robot_rl.safety.shields import RateLimiter, SanityShield, StateShield

__all__ = [
    "FILTERS", "RELAX_LEVELS", "SHIELDS", "Batch", "CbfConfig", "CbfFilter", "Certified", "CoupledModel",
    "FeasibleSet", "Filter", "FilterSpec", "JointSpaceDynamics", "PassivityConfig", "PassivityFilter",
    "RateLimitConfig", "RateLimiter", "SafetyChain", "SanityConfig", "SanityShield", "SerialChain", "StateShield",
    "StateShieldConfig", "WorkspaceConfig", "build_chain", "parse_safety",
]
