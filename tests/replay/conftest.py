"""Fixtures shared by the bag tests: the A1 contract and one seeded simulated log of 60 ticks in two episodes."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.contract import PolicyContract
from robot_rl.logs import SimLog, a1_contract, simulate_ticks


@pytest.fixture(scope="module")
def contract() -> PolicyContract:
    return a1_contract()


@pytest.fixture(scope="module")
def log(contract: PolicyContract) -> SimLog:
    rng = np.random.default_rng(0)
    return simulate_ticks(contract, lambda o: 0.3 * rng.standard_normal(12), 60, reset_every=30)
