from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from robot_rl.contract import PolicyContract
from robot_rl.errors import ContractError
from robot_rl.state import RobotState, projected_gravity, tilt_angle


def _state(q: np.ndarray, quat=(1.0, 0.0, 0.0, 0.0)) -> RobotState:
    batch = q.shape[:-1]
    return RobotState(joint_pos=q, joint_vel=np.zeros_like(q), base_quat=np.broadcast_to(quat, (*batch, 4)),
                      base_ang_vel=np.zeros((*batch, 3)), base_lin_acc=np.zeros((*batch, 3)))


def test_json_round_trip(tmp_path, contract_factory):
    c = contract_factory(history=3)
    c.to_json(tmp_path / "contract.json")
    back = PolicyContract.load(tmp_path / "contract.json")
    assert back == c
    assert back.obs_dim == 3 + 2 + 3 * 3 + 3


@pytest.mark.parametrize("field,value,msg", [
    ("kp", [1.0], "kp has 1 values"),
    ("joint_pos_lower", [2.0, 2.0, 2.0], "joint_pos_lower >= joint_pos_upper for j0"),
    ("physics_rate_hz", 130.0, "not a multiple"),
    ("torque_limit", [1.0, -1.0, 1.0], "torque_limit must be positive"),
])
def test_invalid_contract_names_the_field(field, value, msg, toy_contract):
    with pytest.raises(ContractError, match=msg):
        toy_contract.replace(**{field: value})


def test_unknown_key_and_wrong_type_are_refused(toy_contract):
    data = toy_contract.to_dict()
    with pytest.raises(ContractError, match="unknown key bogus"):
        PolicyContract.from_dict({**data, "bogus": 1})
    with pytest.raises(ContractError, match="policy_rate_hz: expected a number"):
        PolicyContract.from_dict({**data, "policy_rate_hz": "fast"})


def test_check_robot_names_the_mismatch(toy_contract):
    c = toy_contract
    with pytest.raises(ContractError, match="lacks contract joints: j2"):
        c.check_robot(joint_names=["j0", "j1", "x"])
    with pytest.raises(ContractError, match="not 'a1'"):
        c.check_robot(robot="a1")
    c.check_robot(robot="toy", joint_names=["j2", "j0", "j1"], physics_rate_hz=200.0)


def test_act_decodes_and_clips(toy_contract):
    c = toy_contract
    q = c.act(np.array([0.0, 1.0, 5.0]))
    np.testing.assert_allclose(q, [0.0, 0.1 + 0.5, 0.2 + 0.5])


def test_applied_action_inverts_act(toy_contract):
    raw = np.array([0.3, -4.0, 2.0])  # beyond the clip on two joints
    targets = toy_contract.act(raw)
    np.testing.assert_allclose(toy_contract.applied_action(targets), [0.3, -1.0, 1.0])
    delta = toy_contract.replace(action=dataclasses.replace(toy_contract.action, type="joint_position_delta"))
    state = _state(np.array([0.2, 0.0, -0.1]))
    np.testing.assert_allclose(delta.applied_action(delta.act(raw, state), state), [0.3, -1.0, 1.0])


def test_observer_layout_history_and_batching(contract_factory):
    c = contract_factory(history=2)
    obs = c.make_observer()
    s = _state(np.array([0.0, 0.1, 0.2]))
    o1 = obs(s, np.array([0.5, -0.2]), np.zeros(3))
    np.testing.assert_allclose(o1[:3], [0, 0, -1])
    np.testing.assert_allclose(o1[3:5], [0.5, -0.2])
    np.testing.assert_allclose(o1[5:11], 0.0, atol=1e-7)  # both history slots filled with the first sample
    o2 = obs(_state(np.array([0.5, 0.1, 0.2])), np.zeros(2), np.zeros(3))
    np.testing.assert_allclose(o2[5:8], [0.5, 0, 0], atol=1e-7)  # newest first
    np.testing.assert_allclose(o2[8:11], 0.0, atol=1e-7)
    # the batched observer gives the same numbers per environment
    bobs = c.make_observer((2,))
    q = np.array([[0.0, 0.1, 0.2], [0.0, 0.1, 0.2]])
    bobs(_state(q), np.tile([0.5, -0.2], (2, 1)), np.zeros((2, 3)))
    q2 = q.copy()
    q2[0, 0] = 0.5
    out = bobs(_state(q2), np.zeros((2, 2)), np.zeros((2, 3)))
    np.testing.assert_allclose(out[0], o2, atol=1e-6)
    bobs.reset(np.array([True, False]))
    out = bobs(_state(q2), np.zeros((2, 2)), np.zeros((2, 3)))
    np.testing.assert_allclose(out[0, 5:11], [0.5, 0, 0, 0.5, 0, 0], atol=1e-6)
    np.testing.assert_allclose(out[1, 5:11], 0.0, atol=1e-6)


def test_projected_gravity_matches_rotation():
    from scipy.spatial.transform import Rotation

    rng = np.random.default_rng(1)
    for _ in range(20):
        r = Rotation.random(random_state=rng)
        x, y, z, w = r.as_quat()
        expect = r.inv().apply([0, 0, -1])
        np.testing.assert_allclose(projected_gravity(np.array([w, x, y, z])), expect, atol=1e-9)
    assert tilt_angle(np.array([1.0, 0, 0, 0])) == pytest.approx(0.0)
    # the batched path agrees with the per-robot path
    quats = Rotation.random(5, random_state=rng).as_quat()[:, [3, 0, 1, 2]].reshape(5, 1, 4)
    batched = projected_gravity(quats)
    assert batched.shape == (5, 1, 3)
    for i in range(5):
        np.testing.assert_allclose(batched[i, 0], projected_gravity(quats[i, 0]), atol=1e-12)
