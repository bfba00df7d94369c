"""Bundle export/load: TorchScript and ONNX match the PyTorch actor, round trip, onnxruntime-only loading, errors."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest
import torch

from robot_rl.bundle import export_bundle, load_bundle
from robot_rl.errors import BundleError
from robot_rl.networks import Policy
from robot_rl.normalizer import RunningNormalizer


@pytest.fixture
def exported(tmp_path, toy_contract):
    torch.manual_seed(0)
    actor = Policy(toy_contract.obs_dim, toy_contract.act_dim, (32, 16))
    with torch.no_grad():  # make the output layer non-trivial (it is initialised near zero)
        actor.net[-1].weight.normal_(0.0, 0.5)
    norm = RunningNormalizer(toy_contract.obs_dim)
    norm.update(torch.randn(500, toy_contract.obs_dim) * 3.0 + 1.0)
    mean, std = norm.stats()
    contract = toy_contract.replace(obs_mean=mean, obs_std=std, provenance={"task": "toy"})
    path = export_bundle(tmp_path / "bundle", contract, actor.net, {"return_mean": 12.5, "episodes": 3})
    return path, actor, norm


def test_runtimes_match_pytorch_actor(exported, rng):
    path, actor, norm = exported
    obs = rng.normal(1.0, 3.0, size=(64, actor.obs_dim)).astype(np.float32)
    with torch.no_grad():
        ref = actor.net(norm(torch.from_numpy(obs))).numpy()
    for runtime in ("onnx", "torchscript"):
        bundle = load_bundle(path, runtime=runtime)
        np.testing.assert_allclose(bundle.act(obs), ref, atol=1e-5)
        np.testing.assert_allclose(bundle.act(obs[3]), ref[3], atol=1e-5)  # unbatched form


def test_round_trip_contract_and_metadata(exported, toy_contract):
    path, _, norm = exported
    bundle = load_bundle(path)
    assert bundle.contract.joint_names == toy_contract.joint_names
    assert bundle.contract.obs_terms == toy_contract.obs_terms
    assert bundle.contract.obs_std == pytest.approx(norm.stats()[1])
    assert bundle.metadata["task"] == "toy"
    assert bundle.metadata["metrics"]["return_mean"] == 12.5
    assert "git_commit" in bundle.metadata
    assert "return_mean" in (path / "README.md").read_text()
    assert sorted(p.name for p in path.iterdir()) == ["README.md", "contract.json", "policy.onnx", "policy.pt"]


def test_onnx_runtime_without_torch(exported, rng):
    path, actor, norm = exported
    obs = rng.normal(size=(5, actor.obs_dim)).astype(np.float32)
    with torch.no_grad():
        ref = actor.net(norm(torch.from_numpy(obs))).numpy()
    np.save(path.parent / "obs.npy", obs)
    code = textwrap.dedent(f"""
        import sys, json
        import numpy as np
        sys.modules["torch"] = None  # any torch import on this path fails
        from robot_rl.bundle import load_bundle
        b = load_bundle({str(path)!r})
        out = b.act(np.load({str(path.parent / "obs.npy")!r}))
        print(json.dumps(out.tolist()))
        assert not any(m == "torch" or m.startswith("torch.") for m in sys.modules if sys.modules[m] is not None)
    """)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    np.testing.assert_allclose(np.array(json.loads(res.stdout.strip().splitlines()[-1])), ref, atol=1e-5)


def test_malformed_bundles_name_the_file(exported, tmp_path):
    path, _, _ = exported
    with pytest.raises(BundleError, match="not a directory"):
        load_bundle(tmp_path / "nope")
    (path / "policy.onnx").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="policy.onnx"):
        load_bundle(path)
    (path / "policy.onnx").unlink()
    with pytest.raises(BundleError, match="missing policy.onnx"):
        load_bundle(path)
    (path / "policy.pt").write_bytes(b"garbage")
    with pytest.raises(BundleError, match="policy.pt"):
        load_bundle(path, runtime="torchscript")
    (path / "contract.json").write_text("{not json")
    with pytest.raises(BundleError, match="contract.json"):
        load_bundle(path)
    (path / "contract.json").unlink()
    with pytest.raises(BundleError, match="missing contract.json"):
        load_bundle(path)


def test_wrong_obs_shape_and_unnormalized_contract(exported, tmp_path, toy_contract):
    path, actor, _ = exported
    with pytest.raises(BundleError, match="obs_dim"):
        load_bundle(path).act(np.zeros(toy_contract.obs_dim + 1, np.float32))
    bad = export_bundle(tmp_path / "plain", toy_contract, actor.net, {})
    with pytest.raises(BundleError, match="obs_mean/obs_std"):
        load_bundle(bad)


def test_export_replaces_existing_bundle(exported, toy_contract):
    path, actor, norm = exported
    mean, std = norm.stats()
    export_bundle(path, toy_contract.replace(obs_mean=mean, obs_std=std), actor.net, {"return_mean": 99.0})
    assert load_bundle(path).metadata["metrics"]["return_mean"] == 99.0
    assert not list(path.parent.glob(".bundle*"))


def test_replacing_a_bundle_never_leaves_the_path_empty(exported, toy_contract):
    """A robot (or another process) loading the bundle while a new version is exported finds a whole bundle at
    every moment: the new folder is built beside it and swapped in, the old one removed afterwards."""
    import threading

    path, actor, norm = exported
    mean, std = norm.stats()
    contract = toy_contract.replace(obs_mean=mean, obs_std=std)
    stop = threading.Event()
    missing: list[str] = []
    checks = [0]

    def watch() -> None:
        while not stop.is_set():
            checks[0] += 1
            for name in ("contract.json", "policy.onnx", "policy.pt"):
                if not (path / name).is_file():
                    missing.append(name)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for k in range(8):
            export_bundle(path, contract, actor.net, {"return_mean": float(k)})
    finally:
        stop.set()
        watcher.join()
    assert checks[0] > 0 and not missing, f"{len(missing)} of {checks[0]} checks found no bundle"
    assert load_bundle(path).metadata["metrics"]["return_mean"] == 7.0
    assert not list(path.parent.glob(".bundle*"))
