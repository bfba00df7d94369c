"""Errors a user causes end in one line naming the cause, exit code 2, nothing written: a dataset whose contract is
corrupt, a contract path that cannot be read as a file, a checkpoint missing what export reads."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from robot_rl.cli import main
from robot_rl.logs import a1_contract, simulate_ticks, write_tick_bag


def _one_line(capsys: pytest.CaptureFixture[str]) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    return err[0]


@pytest.fixture(scope="module")
def bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    contract = a1_contract()
    rng = np.random.default_rng(0)
    log = simulate_ticks(contract, lambda o: 0.3 * rng.standard_normal(12), 20)
    return write_tick_bag(tmp_path_factory.mktemp("bag") / "bag", log, contract)


def test_dataset_with_a_corrupt_contract(tmp_path: Path, bag: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["replay", str(bag), "--out", str(tmp_path / "ds")]) == 0
    meta = tmp_path / "ds" / "data" / "metadata.json"
    doc = json.loads(meta.read_text())
    doc["robot_rl.contract"] = doc["robot_rl.contract"][:100]  # cut short, as a partial copy leaves it
    meta.write_text(json.dumps(doc))
    capsys.readouterr()
    assert main(["sysid", str(tmp_path / "ds"), "--robot", "a1", "--out", str(tmp_path / "rand.yaml")]) == 2
    line = _one_line(capsys)
    assert str(tmp_path / "ds") in line and "contract" in line and "corrupt" in line
    assert not (tmp_path / "rand.yaml").exists()


def test_contract_that_cannot_be_read(tmp_path: Path, bag: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The OS refuses the contract file (here: a folder where contract.json should be; a file without read
    permission takes the same path): one line naming the file, not an internal error."""
    (tmp_path / "bundle" / "contract.json").mkdir(parents=True)
    assert main(["replay", str(bag), "--out", str(tmp_path / "ds"), "--bundle", str(tmp_path / "bundle")]) == 2
    line = _one_line(capsys)
    assert str(tmp_path / "bundle" / "contract.json") in line and "internal" not in line
    assert not (tmp_path / "ds").exists()


def test_checkpoint_missing_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from robot_rl.config import load_config
    from robot_rl.runner import Runner, TrainConfig, find_checkpoint

    cfg = load_config(TrainConfig, None, [
        "task=gym:Pendulum-v1", "task_overrides=[]", "eval_overrides=[]", "num_envs=4", "max_minutes=0",
        "max_env_steps=256", "ppo.num_steps=64", "eval_episodes=0", "video=false", f"runs_dir={tmp_path}"])
    Runner(cfg, tmp_path / "run", progress=False).train()
    ckpt = find_checkpoint(tmp_path / "run")
    data = torch.load(ckpt, weights_only=True)
    del data["env_steps"]
    torch.save(data, ckpt)
    assert main(["export", str(ckpt), "--out", str(tmp_path / "bundle")]) == 2
    line = _one_line(capsys)
    assert str(ckpt) in line and "env_steps" in line
    assert not (tmp_path / "bundle").exists()


def _without_root_file_access() -> None:
    """In the child before exec: drop CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH from the bounding set, so a root
    process is refused files by their permissions like any user (no-op for a user, who lacks them anyway)."""
    import ctypes
    import os

    if os.geteuid() != 0:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
        if libc.prctl(24, cap, 0, 0, 0) != 0:  # PR_CAPBSET_DROP
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP)")


def test_contract_without_read_permission(tmp_path: Path, bag: Path) -> None:
    """A contract.json the user may not read: one line naming it (was: internal error, exit 1). Root reads every
    file through two capabilities (DAC override, DAC read search): as root the command runs without them, as a
    user whose file permissions are checked."""
    import os
    import subprocess
    import sys

    from robot_rl.logs import a1_contract

    contract = tmp_path / "contract.json"
    contract.write_text(a1_contract().to_json())
    contract.chmod(0)
    proc = subprocess.run([sys.executable, "-m", "robot_rl.cli", "replay", str(bag), "--out", str(tmp_path / "ds"),
                           "--bundle", str(contract)], capture_output=True, text=True, timeout=120,
                          preexec_fn=_without_root_file_access, env={**os.environ, "MPLCONFIGDIR": str(tmp_path)})
    assert proc.returncode == 2, proc.stderr
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and str(contract) in err[0] and "Permission denied" in err[0], proc.stderr
    assert not (tmp_path / "ds").exists()


A1_BUNDLE = Path(__file__).parent / "ros" / "data" / "a1_walk"


def test_deploy_refuses_sim_params_that_are_not_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["deploy", str(A1_BUNDLE), "--sim", "mujoco", "--sim-params", "friction=0.6", "--record",
                 str(tmp_path / "rec")]) == 2
    assert "sim_params: not JSON" in _one_line(capsys) and not (tmp_path / "rec").exists()


def test_node_that_dies_is_one_line_with_its_reason(capfd: pytest.CaptureFixture[str]) -> None:
    """A node dying (here the policy node refusing a parameter of the wrong type) printed its traceback on the
    terminal and then 'node(s) exited: {...}'; now the nodes write to log files (a temporary folder unless recording
    or --log-dir) and the error is the node, its exit code and its last words. The deploy runs on a random
    ROS_DOMAIN_ID with LOCALHOST discovery, as it always does."""
    import re
    import shutil

    assert main(["deploy", str(A1_BUNDLE), "--sim", "mujoco", "--param", "rate_hz=abc", "--duration", "60"]) == 2
    out, err = capfd.readouterr()
    assert "Traceback" not in out + err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "policy node exited with code 1" in lines[0] and "'rate_hz'" in lines[0]
    found = re.search(r"\(log (\S+/policy\.log)\)", lines[0])
    assert found is not None
    log = Path(found[1])
    try:
        assert "Traceback" in log.read_text()  # the whole story stays in the log
    finally:
        shutil.rmtree(log.parent)
