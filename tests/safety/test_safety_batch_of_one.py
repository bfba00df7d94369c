"""One robot is a batch of one: `certify` on each robot gives what `certify_batch` gives for the whole batch, tick
after tick (filter state, tank and latches included); and a filter plugs in by one registry entry."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from safety_harness import IIWA_URDF, build_robot

from robot_rl.contract import PolicyContract
from robot_rl.safety import FILTERS, Batch, Certified, FilterSpec, build_chain
from robot_rl.state import RobotState

A1 = PolicyContract.load(Path(__file__).parents[1] / "ros" / "data" / "a1_walk" / "contract.json")
FULL = [{"type": "sanity"}, {"type": "state", "max_tilt": 1.0, "max_repeated_states": 3, "backup": "hold"},
        {"type": "rate_limit", "max_rate": 20.0}, {"type": "cbf", "joint_inertia": 0.03, "gamma": 0.5},
        {"type": "passivity", "tank_init": 1.0, "tank_max": 2.0}]


def _stream(contract: PolicyContract, num: int, ticks: int, seed: int):
    """Random ticks: perturbed poses, fast joints, now and then a NaN target, a target out of range, a tilted base,
    a repeated timestamp or states beyond the limits."""
    rng = np.random.default_rng(seed)
    n = contract.num_joints
    lower, upper = np.asarray(contract.joint_pos_lower), np.asarray(contract.joint_pos_upper)
    default = np.asarray(contract.default_joint_pos, float)
    for t in range(ticks):
        q = default + 0.3 * rng.standard_normal((num, n))
        v = 3.0 * rng.standard_normal((num, n))
        targets = q + 0.4 * rng.standard_normal((num, n))
        quat = np.tile([1.0, 0.0, 0.0, 0.0], (num, 1))
        ts = np.full(num, 0.02 * t)
        for i in range(num):
            kind = rng.random()
            if kind < 0.04:
                targets[i, rng.integers(n)] = np.nan
            elif kind < 0.07:
                targets[i, rng.integers(n)] = upper.max() + 5.0
            elif kind < 0.09:
                quat[i] = [np.cos(0.8), np.sin(0.8), 0.0, 0.0]
            elif kind < 0.12:
                ts[i] = 0.0
            elif kind < 0.2:
                q[i] = lower + rng.uniform(-0.05, 1.05, n) * (upper - lower)
        yield RobotState(joint_pos=q, joint_vel=v, base_quat=quat, base_ang_vel=np.zeros((num, 3)),
                         base_lin_acc=np.zeros((num, 3)), timestamp=ts, base_pos=np.tile([0.0, 0.0, 0.3], (num, 1))), \
            targets, rng.random() < 0.05


@pytest.mark.parametrize(("name", "compiled"), [("a1_walk", True), ("a1_walk", False), ("full", True),
                                               ("full", False), ("arm", False)])
def test_single_robot_path_equals_the_batch_path(name: str, compiled: bool) -> None:
    if name == "arm":
        contract = build_robot("iiwa").contract.replace(safety=[
            {"type": "cbf", "model": "coupled", "urdf": IIWA_URDF, "armature": 0.01}, {"type": "passivity"}])
        num, ticks = 2, 12
    else:
        contract = A1 if name == "a1_walk" else A1.replace(safety=FULL)
        num, ticks = 4, 80
    batched = build_chain(contract)
    singles = [build_chain(contract) for _ in range(num)]
    assert (singles[0]._fast is not None) == (name != "arm")
    if not compiled:
        for chain in singles:
            chain._fast = None  # the filters' own code on a batch of one
    for state, targets, reset in _stream(contract, num, ticks, seed=3):
        u_b, info_b = batched.certify_batch(state, targets)
        for i, chain in enumerate(singles):
            u, info = chain.certify(state.index(i), targets[i])
            np.testing.assert_array_equal(u, u_b[i])
            for key, value in info.items():  # a robot on its backup reports only the chain's and commit telemetry
                ref = info_b[key][i]
                if isinstance(value, float):
                    assert value == pytest.approx(float(ref), rel=1e-12, abs=1e-15), key  # summation order
                elif isinstance(value, np.ndarray):
                    np.testing.assert_array_equal(value, ref, err_msg=key)
                else:
                    assert value == ref, key
            assert set(info_b) - set(info) <= ({k for k in info_b if not k.startswith("safety/")}
                                               if info["safety/backup"] else set())
        if reset:
            batched.reset()
            for chain in singles:
                chain.reset()


@dataclass
class _Veto:
    """A filter that refuses robots whose first target is above 0.5 (failures as data)."""

    name: str = "veto"

    def certify(self, batch: Batch, targets: np.ndarray) -> Certified:
        failed = targets[:, 0] > 0.5
        return Certified(targets, {"veto/failed": failed}, failed=failed)

    def commit(self, state: RobotState, applied: np.ndarray) -> dict[str, np.ndarray]:
        return {}

    def reset(self, mask: np.ndarray | None) -> None:
        """Stateless."""


@dataclass(frozen=True)
class _VetoConfig:
    def validate(self, where: str, n: int) -> None:
        """Nothing to check."""


def test_a_filter_plugs_in_by_one_registration(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(FILTERS, "veto", FilterSpec(_VetoConfig, lambda contract, cfg: _Veto()))
    contract = A1.replace(safety=[{"type": "veto"}, {"type": "rate_limit", "max_rate": 20.0}])
    chain = build_chain(contract)
    assert [f.name for f in chain.filters] == ["veto", "rate_limit"]
    num, n = 3, contract.num_joints
    q = np.tile(contract.default_joint_pos, (num, 1))
    state = RobotState(joint_pos=q, joint_vel=np.zeros((num, n)), base_quat=np.tile([1.0, 0, 0, 0], (num, 1)),
                       base_ang_vel=np.zeros((num, 3)), base_lin_acc=np.zeros((num, 3)))
    targets = q + 0.01
    targets[1, 0] = 0.6
    u, info = chain.certify_batch(state, targets)
    assert list(info["safety/backup"]) == [False, True, False]
    assert info["safety/shield"][1] == "chain"
    np.testing.assert_array_equal(u[1], q[1])  # the damping backup holds the position
    assert info["veto/failed"][1]
