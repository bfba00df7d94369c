"""One config path for every command: `--config FILE.yaml` and `--set key=value` on the command's config dataclass,
under the fields' own names; an unknown key is one line naming it, exit code 2, nothing written."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from robot_rl.cli import main
from robot_rl.config import add_config_arguments, add_field_flag, config_from_args
from robot_rl.errors import ConfigError
from robot_rl.replay import TopicMapping
from robot_rl.sysid import SysIdConfig


def _refused(argv: list[str], key: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"unknown key {key}" in err[0], err


@pytest.mark.parametrize("argv", [
    ["sysid", "{tmp}/ds", "--robot", "a1", "--out", "{tmp}/out/rand.yaml"],
    ["replay", "{tmp}/bag", "--out", "{tmp}/out"],
    ["finetune", "{tmp}/bundle", "--data", "{tmp}/ds", "--out", "{tmp}/out"],
    ["train", "--run-dir", "{tmp}/out"],
    ["bench", "sim"],
    ["bench", "ros", "--log-dir", "{tmp}/out"],
    ["deploy", "{tmp}/bundle", "--record", "{tmp}/out"],
    ["eval", "{tmp}/bundle", "--out", "{tmp}/out"],
])
def test_every_command_refuses_an_unknown_key_the_same_way(tmp_path: Path, argv: list[str],
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    argv = [a.format(tmp=tmp_path) for a in argv]
    _refused([*argv, "--set", "horizon_typo=3"], "horizon_typo", capsys)
    config = tmp_path / "c.yaml"
    config.write_text("no_such_field: 1\n")
    _refused([*argv, "--config", str(config)], "no_such_field", capsys)
    assert not (tmp_path / "out").exists()


def test_set_reaches_fields_argparse_never_had(tmp_path: Path) -> None:
    """Every SysIdConfig field is settable (before: profile_evals, fresh_starts, the residual scales and timing had
    no flag), from a file and from --set, the later winning."""
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, SysIdConfig, "horizon=4")
    config = tmp_path / "fit.yaml"
    config.write_text("profile_evals: 30\nfresh_starts: 2\ntiming: false\nhorizon: 4\n")
    args = parser.parse_args(["--config", str(config), "--set", "horizon=6", "gyro_scale=0.2",
                              "observables=[joint_pos, gyro]"])
    cfg = config_from_args(SysIdConfig, args)
    assert (cfg.profile_evals, cfg.fresh_starts, cfg.timing, cfg.horizon, cfg.gyro_scale) == (30, 2, False, 6, 0.2)
    assert cfg.observables == ("joint_pos", "gyro")


def test_field_flags_are_set_in_command_line_order() -> None:
    parser = argparse.ArgumentParser()
    add_config_arguments(parser, SysIdConfig, "horizon=4")
    add_field_flag(parser, "--horizon", "horizon", "ticks predicted")
    args = parser.parse_args(["--set", "horizon=3", "--horizon", "5"])
    assert config_from_args(SysIdConfig, args).horizon == 5
    args = parser.parse_args(["--horizon", "5", "--set", "horizon=3"])
    assert config_from_args(SysIdConfig, args).horizon == 3


def test_dict_fields_take_keys_from_set_and_whole_mappings_from_yaml(tmp_path: Path) -> None:
    from robot_rl.commands.replay import ReplayConfig

    parser = argparse.ArgumentParser()
    add_config_arguments(parser, ReplayConfig, "imu=/imu/data", config_flags=("--config", "--topics"))
    add_field_flag(parser, "--gap", "gap_s", "gap")
    add_field_flag(parser, "--recover", "recover", "recover", nargs=0)
    topics = tmp_path / "topics.yaml"
    topics.write_text(yaml.safe_dump({"imu": "/imu/data", "joint_names": {"FR_hip_joint": "fr_hip"}}))
    args = parser.parse_args(["--topics", str(topics), "--set", "joint_names.FL_hip_joint=fl_hip", "--gap", "0.5",
                              "--recover"])
    cfg = config_from_args(ReplayConfig, args)
    assert cfg.joint_names == {"FR_hip_joint": "fr_hip", "FL_hip_joint": "fl_hip"}
    assert (cfg.imu, cfg.gap_s, cfg.recover) == ("/imu/data", 0.5, True)
    assert cfg.mapping() == TopicMapping(imu="/imu/data", joint_names=cfg.joint_names)


def test_bench_flags_are_the_config_fields() -> None:
    """A benchmark's flags are spelled from its config's fields (--num-envs is num_envs), one mechanism."""
    from robot_rl.bench.sim import SimBenchConfig, add_arguments

    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--num-envs", "8", "--safety", "--set", "threads=2", "seconds=0.5"])
    assert config_from_args(SimBenchConfig, args) == SimBenchConfig(num_envs=8, safety=True, threads=2, seconds=0.5)


NO_ROS = """
import sys


class _NoRos:
    def find_spec(self, name, path=None, target=None):
        if name == "rclpy" or name.startswith("rclpy."):
            raise ModuleNotFoundError(f"No module named '{name}'", name=name)
        return None


sys.meta_path.insert(0, _NoRos())
"""


def test_deploy_without_the_ros_runtime_is_one_line(tmp_path: Path) -> None:
    """Without the [ros] extra every node died with its own traceback and deploy blamed the nodes; now it refuses
    before starting any. The missing package is made missing for the whole process tree by a sitecustomize that
    refuses `import rclpy`, as an interpreter without it does."""
    import os
    import subprocess
    import sys

    site = tmp_path / "site"
    site.mkdir()
    (site / "sitecustomize.py").write_text(NO_ROS)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(site), os.environ.get("PYTHONPATH")]))}
    bundle = Path(__file__).parent / "ros" / "data" / "a1_walk"
    proc = subprocess.run([sys.executable, "-m", "robot_rl.cli", "deploy", str(bundle), "--sim", "mujoco",
                           "--duration", "2", "--record", str(tmp_path / "rec")],
                          capture_output=True, text=True, timeout=120, env=env)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert len(err) == 1 and "ROS 2 runtime is missing" in err[0] and "robot-rl[ros]" in err[0], proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr and not (tmp_path / "rec").exists()


def test_set_makes_nested_mappings_inside_dict_fields() -> None:
    from robot_rl.config import load_config
    from robot_rl.offline.finetune import FinetuneConfig

    base = FinetuneConfig(bundle="b", data="d", out="o")
    cfg = load_config(FinetuneConfig, None, ["learner.critic.reward_scale=2", "learner.temperature=3"], base=base)
    assert cfg.learner == {"critic": {"reward_scale": 2}, "temperature": 3}
    with pytest.raises(ConfigError, match="unknown key learner_typo.x"):
        load_config(FinetuneConfig, None, ["learner_typo.x=1"], base=base)
