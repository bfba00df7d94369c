"""The legged chain's compiled path gives the same targets and telemetry as the filters' own code, tick after tick
(rate-limiter state included), hands every unusual tick to that code, and is refused when it is built wrong."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from robot_rl.contract import PolicyContract
from robot_rl.safety import FILTERS, build_chain, parse_safety
from robot_rl.safety.fast import LegPath
from robot_rl.state import RobotState

A1 = PolicyContract.load(Path(__file__).parents[1] / "ros" / "data" / "a1_walk" / "contract.json")


def _chains(gamma: float, passivity: bool = False) -> tuple:
    safety = [dict(e, gamma=gamma) if e["type"] == "cbf" else e for e in A1.safety]
    if passivity:  # the energy tank after the CBF: the compiled path runs the tank's own scaling too
        safety.append({"type": "passivity", "tank_init": 1.0, "tank_min": 0.1, "tank_max": 2.0})
    contract = A1.replace(safety=safety)
    fast, ref = build_chain(contract), build_chain(contract)
    assert fast._fast is not None
    ref._fast = None
    return fast, ref


def _same(info_fast: dict, info_ref: dict) -> None:
    assert info_fast.keys() == info_ref.keys()
    for key, ref in info_ref.items():
        got = info_fast[key]
        if isinstance(ref, np.ndarray):
            np.testing.assert_array_equal(got, ref, err_msg=key)
        elif isinstance(ref, float):
            assert np.isclose(got, ref, rtol=1e-12, atol=1e-15), key
        else:
            assert got == ref and type(got) is type(ref), key


@settings(max_examples=40, deadline=None, derandomize=True)
@given(st.integers(0, 2**32 - 1), st.sampled_from([1.0, 0.2]), st.booleans())
def test_fast_path_equals_reference_over_tick_sequences(seed: int, gamma: float, passivity: bool) -> None:
    fast, ref = _chains(gamma, passivity)
    rng = np.random.default_rng(seed)
    n = A1.num_joints
    lower, upper = np.asarray(A1.joint_pos_lower), np.asarray(A1.joint_pos_upper)
    default = np.asarray(A1.default_joint_pos)
    path = fast._fast
    served: list = []
    for method in ("run", "tick"):  # tick: the state shield's check in the same compiled call
        original = getattr(path, method)
        setattr(path, method, lambda *args, call=original: served.append(call(*args)) or served[-1])
    for tick in range(60):
        kind = rng.random()
        q = default + 0.3 * rng.standard_normal(n)
        v = rng.uniform(0.5, 12.0) * rng.standard_normal(n)
        targets = q + 0.4 * rng.standard_normal(n)
        quat = np.array([1.0, 0.0, 0.0, 0.0])
        if kind < 0.05:
            targets[rng.integers(n)] = np.nan  # sanity backup
        elif kind < 0.08:
            targets[rng.integers(n)] = upper.max() + 5.0  # out of range
        elif kind < 0.10:
            quat = np.array([np.cos(0.8), np.sin(0.8), 0.0, 0.0])  # tilted 1.6 rad: the state shield latches
        elif kind < 0.15:
            q = lower + rng.uniform(-0.05, 1.05, n) * (upper - lower)  # at and beyond the limits: relaxation
        if kind > 0.97:
            for chain in (fast, ref):
                chain.reset()
        state = RobotState(joint_pos=q, joint_vel=v, base_quat=quat, base_ang_vel=np.zeros(3),
                           base_lin_acc=np.zeros(3), timestamp=0.002 * tick)
        u_fast, info_fast = fast.certify(state, targets.copy())
        u_ref, info_ref = ref.certify(state, targets.copy())
        np.testing.assert_array_equal(u_fast, u_ref)
        _same(info_fast, info_ref)
        if info_ref["safety/latched"] and rng.random() < 0.5:
            for chain in (fast, ref):  # release the latch (as an operator's reset), or keep it a while longer
                chain.reset()
    assert sum(r is not None for r in served) > 20  # most ticks took the compiled path


def test_backups_and_their_reasons_come_from_the_reference_code() -> None:
    fast, ref = _chains(1.0)
    n = A1.num_joints
    q = np.asarray(A1.default_joint_pos, float)
    state = RobotState(joint_pos=q, joint_vel=np.zeros(n), base_quat=np.array([1.0, 0, 0, 0]),
                       base_ang_vel=np.zeros(3), base_lin_acc=np.zeros(3))
    bad = q.copy()
    bad[3] = np.inf
    for chain in (fast, ref):
        u, info = chain.certify(state, bad)
        assert info["safety/backup"] and info["safety/shield"] == "sanity" and "NaN/Inf" in info["safety/reason"]
        np.testing.assert_array_equal(u, q)  # damping backup holds the current position
    fast.estop("test")
    u, info = fast.certify(state, q + 0.01)
    assert info["safety/backup"] and info["safety/reason"] == "e-stop: test" and info["safety/latched"]


def test_kernel_is_checked_against_the_filters_when_built() -> None:
    fast, _ = _chains(1.0)
    path = fast._fast
    specs = [(FILTERS[f.name], cfg) for f, (_, cfg) in zip(fast.filters, parse_safety(fast.contract)[2:])]
    path.verify(fast.contract, specs)  # the chain's own kernel agrees with fresh filters
    tables = path.tables.copy()
    tables[..., 0] -= 0.05  # every bound 0.05 rad tighter
    wrong = LegPath(path.sanity, path.rate, tables)
    with pytest.raises(ValueError, match="compiled leg path"):
        wrong.verify(fast.contract, specs)


def test_compiled_path_writes_no_filter_state() -> None:
    """The kernel reads the limiter's memory; only the chain's commit (as on the filter path) writes it."""
    fast, _ = _chains(1.0)
    rate = fast.filters[0]
    q = np.asarray(A1.default_joint_pos, float)
    state = RobotState(joint_pos=q, joint_vel=np.zeros(A1.num_joints), base_quat=np.array([1.0, 0, 0, 0]),
                       base_ang_vel=np.zeros(3), base_lin_acc=np.zeros(3))
    fast.certify(state, q + 0.01)
    prev = rate.prev.copy()
    assert fast._fast.run(q, np.zeros(A1.num_joints), q + 0.3) is not None
    np.testing.assert_array_equal(rate.prev, prev)
