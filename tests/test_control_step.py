"""The control step: clip, decode, certify, encode, intervened, for a batch and for a batch of one."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from robot_rl.contract import ActionSpec, PolicyContract
from robot_rl.control_step import CODECS, INTERVENTION_TOL, ControlStep, codec_for, intervened
from robot_rl.errors import ContractError
from robot_rl.safety import build_chain
from robot_rl.state import RobotState


def _state(q: np.ndarray) -> RobotState:
    batch = q.shape[:-1]
    return RobotState(joint_pos=q, joint_vel=np.zeros_like(q), base_quat=np.broadcast_to([1.0, 0, 0, 0], (*batch, 4)),
                      base_ang_vel=np.zeros((*batch, 3)), base_lin_acc=np.zeros((*batch, 3)))


def _a1() -> PolicyContract:
    from robot_rl.logs import a1_contract

    return a1_contract()


@pytest.mark.parametrize("kind", ["joint_position", "joint_position_delta"])
def test_decode_and_encode_are_the_contracts_bit_for_bit(kind, toy_contract, rng):
    c = toy_contract.replace(action=ActionSpec(type=kind, scale=0.37, clip=0.8))
    step = ControlStep(c, (5,))
    raw = 2.0 * rng.standard_normal((5, 3))
    state = _state(rng.standard_normal((5, 3)))
    clipped, targets = step.decode(raw, state)
    assert np.array_equal(clipped, np.clip(raw, -0.8, 0.8))
    assert np.array_equal(targets, c.act(raw, state))
    assert np.array_equal(step.encode(targets, state), c.applied_action(targets, state))


def test_without_a_chain_the_applied_action_is_the_clipped_action(toy_contract, rng):
    step = ControlStep(toy_contract, (4,))
    raw = 3.0 * rng.standard_normal((4, 3))
    safe = step(raw, _state(np.zeros((4, 3))))
    assert np.array_equal(safe, toy_contract.act(raw)) and np.array_equal(step.applied, np.clip(raw, -1, 1))
    assert not step.intervened.any() and step.info == {}


def _shift_row_one(state: RobotState, targets: np.ndarray) -> tuple[np.ndarray, dict]:
    out = targets.copy()
    out[1, 0] += 10 * INTERVENTION_TOL
    out[2, 2] += 0.5 * INTERVENTION_TOL  # within the tolerance: not an intervention
    return out, {"safety/seen": True}


def test_exact_codec_encodes_every_row_from_the_certified_targets(toy_contract, rng):
    """The locomotion rule: with a chain, every row's applied action is encoded from the certified targets."""
    step = ControlStep(toy_contract, (3,), certify=_shift_row_one)
    state = _state(np.zeros((3, 3)))
    step(rng.uniform(-1, 1, (3, 3)), state)
    assert step.intervened.tolist() == [False, True, False] and step.info == {"safety/seen": True}
    expected = (step.safe - np.asarray(toy_contract.default_joint_pos)) / toy_contract.action.scale
    assert np.array_equal(step.applied, expected)


class _ClippingCodec:
    """An inexact codec (the arm rule): decode clips to a joint range, so encode(decode(a)) is not a."""

    exact = False

    def __init__(self, contract: PolicyContract) -> None:
        self.inner = codec_for(contract)

    def decode(self, action: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        return np.clip(self.inner.decode(action, state, out), -0.2, 0.2, out=out)

    def encode(self, targets: np.ndarray, state: RobotState, out: np.ndarray) -> np.ndarray:
        return self.inner.encode(targets, state, out)


def test_inexact_codec_keeps_the_clipped_action_where_the_chain_changed_nothing(toy_contract, rng):
    step = ControlStep(toy_contract, (3,), codec=_ClippingCodec(toy_contract), certify=_shift_row_one)
    raw = rng.uniform(-2, 2, (3, 3))
    step(raw, _state(np.zeros((3, 3))))
    kept = np.clip(raw, -1, 1)
    assert np.array_equal(step.applied[[0, 2]], kept[[0, 2]])
    assert np.array_equal(step.applied[1], toy_contract.applied_action(step.safe[1]))


def test_a_nan_target_replaced_by_the_chain_counts_as_an_intervention(toy_contract):
    step = ControlStep(toy_contract, (2,), certify=lambda s, t: (np.nan_to_num(t), {}))
    step(np.array([[np.nan, 0.0, 0.0], [0.1, 0.2, 0.3]]), _state(np.zeros((2, 3))))
    assert step.intervened.tolist() == [True, False]
    assert intervened(np.array([np.nan, 0.0]), np.zeros(2)) and not intervened(np.zeros(2), np.full(2, 1e-10))


def test_batch_of_one_with_the_real_chain_matches_the_batched_step(rng):
    """The robot's tick (shape (), chain.certify) and the env's (shape (N,), chain.certify_batch) agree."""
    c = _a1()
    single = ControlStep(c, (), certify=build_chain(c).certify)
    batched = ControlStep(c, (1,), certify=build_chain(c).certify_batch)
    q = np.asarray(c.default_joint_pos)
    for _ in range(5):
        raw = rng.uniform(-3, 3, c.act_dim)
        state = _state(q + 0.05 * rng.standard_normal(c.num_joints))
        one = single(raw, state).copy()
        many = batched(raw[None], _state(state.joint_pos[None]))
        np.testing.assert_allclose(one, many[0], atol=1e-12)
        assert bool(single.intervened) == bool(batched.intervened[0])
        np.testing.assert_allclose(single.applied, batched.applied[0], atol=1e-12)
        q = one


def test_buffers_are_allocated_once(toy_contract, rng):
    step = ControlStep(toy_contract, (2,), certify=_shift_every_row)
    ids = [id(b) for b in (step.action, step.targets, step.safe, step.applied, step.intervened)]
    for _ in range(3):
        out = step(rng.uniform(-1, 1, (2, 3)), _state(np.zeros((2, 3))))
        assert out is step.safe
    assert ids == [id(b) for b in (step.action, step.targets, step.safe, step.applied, step.intervened)]


def _shift_every_row(state: RobotState, targets: np.ndarray) -> tuple[np.ndarray, dict]:
    return targets + 1.0, {}


def test_an_action_type_without_a_codec_is_refused_naming_it(toy_contract, monkeypatch):
    # ee_delta's codec registers with the arm tasks (robot_rl.sim.arm_task); a process that never imported them
    monkeypatch.delitem(CODECS, "ee_delta", raising=False)
    c = dataclasses.replace(toy_contract, action=ActionSpec(type="ee_delta", dim=4))
    with pytest.raises(ContractError, match="action type ee_delta has no registered codec"):
        ControlStep(c)
