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


def record_a1_log(overrides: list[str], ticks: int) -> tuple[SimLog, list[dict[str, float]], PolicyContract]:
    """`ticks` seeded random-action ticks of a one-world a1_walk env under `overrides`, the env's own reward terms
    per tick, and the A1 contract carrying that task config as a trained bundle records it. The log must be one
    episode (no fall, no reset)."""
    from robot_rl.bundle import task_provenance
    from robot_rl.logs import env_ticks
    from robot_rl.sim import make_vec_env, resolve_config

    env = make_vec_env("a1_walk", 1, seed=0, overrides=overrides)
    rng = np.random.default_rng(1)
    try:
        log, scored = env_ticks(env, lambda obs: 1.5 * rng.standard_normal(12), ticks)
    finally:
        env.close()
    assert len(log.ticks) == ticks and len({len(s) for s in scored}) == 1  # one episode, no reset
    base = a1_contract()
    contract = base.replace(provenance={**base.provenance,
                                        **task_provenance("a1_walk", resolve_config("a1_walk", None, overrides))})
    return log, scored, contract
