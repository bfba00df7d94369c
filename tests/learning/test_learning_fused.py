"""The fused tick computes what the bundle's own path computes (observer -> Bundle.act -> contract.act), and it
refuses bundles outside what it reproduces instead of guessing."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.bundle import export_bundle, load_bundle
from robot_rl.contract import ActionSpec, ObsTerm
from robot_rl.fused import FusedPolicy, mlp_layers
from robot_rl.state import RobotState

A1_BUNDLE = Path(__file__).parents[1] / "ros" / "data" / "a1_walk"


def _random_state(contract, rng: np.random.Generator) -> RobotState:
    n = contract.num_joints
    quat = rng.standard_normal(4)
    return RobotState(joint_pos=np.asarray(contract.default_joint_pos) + 0.4 * rng.standard_normal(n),
                      joint_vel=3.0 * rng.standard_normal(n), base_quat=quat / np.linalg.norm(quat),
                      base_ang_vel=2.0 * rng.standard_normal(3), base_lin_acc=np.zeros(3))


def _assert_matches_reference(bundle, fused: FusedPolicy, samples: int, seed: int) -> None:
    c = bundle.contract
    observer = c.make_observer()
    rng = np.random.default_rng(seed)
    for _ in range(samples):
        state = _random_state(c, rng)
        cmd = rng.uniform(-1.5, 1.5, len(c.command_names))
        last = rng.uniform(-2.0, 2.0, c.act_dim).astype(np.float32)
        observer.reset()
        obs = observer(state, cmd, last)
        action = bundle.act(obs)
        _, targets = fused.decode(state, cmd, last)
        np.testing.assert_array_equal(fused.obs, obs)  # same float32 arithmetic, term by term
        np.testing.assert_allclose(fused.action, action, rtol=0.0, atol=2e-5)
        np.testing.assert_allclose(targets, c.act(action, state), rtol=0.0, atol=1e-5)


def test_trained_a1_bundle_fuses_and_matches_onnxruntime() -> None:
    bundle = load_bundle(A1_BUNDLE)
    fused = FusedPolicy.build(bundle)
    assert fused is not None
    _assert_matches_reference(bundle, fused, samples=200, seed=1)


def _toy_bundle(tmp_path: Path, contract, layers: list[torch.nn.Module]) -> object:
    torch.manual_seed(0)
    actor = torch.nn.Sequential(*layers)
    with torch.no_grad():
        for p in actor.parameters():
            p.mul_(3.0)  # large weights: activations far into both branches of ELU / tanh
    stats = dict(obs_mean=[0.1] * contract.obs_dim, obs_std=[0.5] * contract.obs_dim)
    return load_bundle(export_bundle(tmp_path / "bundle", contract.replace(**stats), actor, metrics={}))


@pytest.mark.parametrize("act", [torch.nn.ELU, torch.nn.ReLU, torch.nn.Tanh])
def test_delta_actions_and_each_activation(tmp_path: Path, contract_factory, act) -> None:
    c = contract_factory().replace(action=ActionSpec(type="joint_position_delta", scale=0.3, clip=2.0))
    bundle = _toy_bundle(tmp_path, c, [torch.nn.Linear(c.obs_dim, 16), act(), torch.nn.Linear(16, c.act_dim)])
    fused = FusedPolicy.build(bundle)
    assert fused is not None
    _assert_matches_reference(bundle, fused, samples=100, seed=2)


def test_unsupported_bundles_keep_the_reference_path(tmp_path: Path, contract_factory) -> None:
    c = contract_factory(history=3)  # term history: the kernel keeps no histories
    mlp = [torch.nn.Linear(c.obs_dim, 8), torch.nn.ELU(), torch.nn.Linear(8, c.act_dim)]
    assert FusedPolicy.build(_toy_bundle(tmp_path / "h", c, mlp)) is None
    c = contract_factory().replace(obs_terms=[*contract_factory().obs_terms, ObsTerm("extra.goal", 3)])
    mlp = [torch.nn.Linear(c.obs_dim, 8), torch.nn.ELU(), torch.nn.Linear(8, c.act_dim)]
    assert FusedPolicy.build(_toy_bundle(tmp_path / "x", c, mlp)) is None
    c = contract_factory()
    odd = [torch.nn.Linear(c.obs_dim, 8), torch.nn.SiLU(), torch.nn.Linear(8, c.act_dim)]  # no SiLU branch
    bundle = _toy_bundle(tmp_path / "s", c, odd)
    assert mlp_layers(Path(bundle.path) / "policy.onnx") is None and FusedPolicy.build(bundle) is None


def test_a_bundle_whose_network_differs_from_its_onnx_is_refused(tmp_path: Path, contract_factory) -> None:
    """The check at build time compares against the bundle's runtime: tampered weights never deploy silently."""
    c = contract_factory()
    bundle = _toy_bundle(tmp_path, c, [torch.nn.Linear(c.obs_dim, 8), torch.nn.ELU(), torch.nn.Linear(8, c.act_dim)])
    fused = FusedPolicy.build(bundle, check=False)
    assert fused is not None
    fused._args[7][0][0, 0] += 1.0  # first layer's first weight, as a corrupted or mismatched file would give
    with pytest.raises(ValueError, match="differs from the bundle"):
        fused.verify(bundle)


def test_batched_observer_equals_the_contract_observer_bit_for_bit() -> None:
    """What the vectorized environments use in place of contract.make_observer((N,)); NaN stays NaN."""
    from robot_rl.fused import FusedObserver

    c = load_bundle(A1_BUNDLE).contract
    num = 32
    rng = np.random.default_rng(3)
    states = [_random_state(c, rng) for _ in range(num)]
    batch = RobotState(*(np.stack([getattr(s, f) for s in states]) for f in
                         ("joint_pos", "joint_vel", "base_quat", "base_ang_vel", "base_lin_acc")))
    batch.joint_vel[5, 3] = np.nan
    batch.joint_pos[7, 0] = 1e6  # far beyond the clip
    cmd = rng.uniform(-1.5, 1.5, (num, 3))
    last = rng.uniform(-2.0, 2.0, (num, c.act_dim))
    fused = FusedObserver.build(c, num)
    assert fused is not None
    got, ref = fused(batch, cmd, last), c.make_observer((num,))(batch, cmd, last)
    np.testing.assert_array_equal(got, ref)
    assert np.isnan(got[5]).sum() == 1 and np.isfinite(got[7]).all()
