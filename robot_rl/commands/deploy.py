"""`robot-rl deploy BUNDLE`: run a policy bundle through ROS 2, optionally against a simulated robot and recording.

Each node runs in its own process on an isolated DDS domain (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and
ROS_DOMAIN_ID from --domain-id, random by default). Start order: recorder, simulated robot, policy node (its configure
waits for the first /joint_states). Ctrl-C sends SIGINT to every child, waits, then kills what is left. On a real
robot leave out --sim and pass the robot's topics with --param (see docs/deploy.md).

Settings are `DeployConfig` fields: `--config FILE.yaml`, `--set key=value`, or the flags spelled from the fields
(`--sim mujoco --record bags/run1 --param imu_topic=/imu/data`). When recording, the resolved config is saved as
RECORD/deploy_config.yaml.
"""

from __future__ import annotations

import argparse
import json
import signal
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from robot_rl.config import add_field_flags, config_from_args, save_yaml
from robot_rl.errors import BundleError, ConfigError, RobotRLError


@dataclass(frozen=True)
class DeployConfig:
    """`robot-rl deploy` settings (`--set sim=mujoco duration=20`, or the flags --sim mujoco --duration 20)."""

    sim: Literal["", "mujoco", "pybullet"] = ""
    """Also start a simulated robot on this engine (empty: a real robot, none started)."""
    sim_params: str = ""
    """JSON physical parameters of the simulated robot, e.g. {"friction": 0.6, "added_mass": 1.0}."""
    sim_randomize: int = -1
    """Seed drawing the simulated robot's physical parameters from the training ranges (-1: nominal); sim_params
    override single values."""
    record: str = ""
    """Record a rosbag2 (MCAP) bag into this folder, which must be empty or new (empty: no recording)."""
    duration: float = 0.0
    """Stop after this many seconds (0: until Ctrl-C)."""
    cmd_vel: list[float] = field(default_factory=list)
    """Publish this constant cmd_vel (vx, vy, wz) for the whole run (empty: none)."""
    domain_id: int | None = None
    """ROS_DOMAIN_ID (empty: random in 1..101)."""
    output_mode: Literal["forward", "trajectory"] = "forward"
    """Command output: Float64MultiArray for a forward_command_controller, or JointTrajectory."""
    realtime_priority: int = 0
    """SCHED_FIFO priority of the policy node (needs CAP_SYS_NICE; 0: the default scheduler)."""
    param: dict[str, Any] = field(default_factory=dict)
    """Extra policy-node ROS parameters, e.g. imu_topic: /imu/data."""
    log_dir: str = ""
    """Node logs, one file per node (empty: RECORD/logs when recording, else a new temporary folder)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="policy bundle folder (contract.json + policy.onnx)")
    add_field_flags(parser, DeployConfig, "sim=mujoco duration=20")


def _require_ros() -> None:
    """Every node needs the ROS 2 Python runtime: refuse before starting any, not with each child's traceback."""
    try:
        import rclpy  # noqa: F401
    except ImportError as exc:
        raise ConfigError(f"the ROS 2 runtime is missing ({exc}): pip install 'robot-rl[ros]' or source a ROS 2 "
                          "installation") from None


def _last_line(node: Any) -> str:
    """What a dead node said last (its exception, for a traceback)."""
    lines = [line.strip() for line in node.output().splitlines() if line.strip()]
    return lines[-1][:240] if lines else "no output"


def run(args: argparse.Namespace) -> int:
    from robot_rl.bundle import load_bundle

    cfg = config_from_args(DeployConfig, args)
    if cfg.cmd_vel and len(cfg.cmd_vel) != 3:
        raise ConfigError(f"cmd_vel: expected 3 values (vx vy wz), got {len(cfg.cmd_vel)}")
    if cfg.sim_params:
        try:
            params = json.loads(cfg.sim_params)
        except json.JSONDecodeError as exc:
            raise ConfigError(f"sim_params: not JSON ({exc}): give an object such as '{{\"friction\": 0.6}}'") from None
        if not isinstance(params, dict):
            raise ConfigError(f"sim_params: expected a JSON object of parameter values, got {cfg.sim_params}")
    _require_ros()
    from robot_rl.ros_nodes.procs import NodeGroup

    bundle = load_bundle(args.bundle)  # refuse an unreadable bundle before starting anything
    contract = bundle.contract
    record = Path(cfg.record) if cfg.record else None
    log_dir = Path(cfg.log_dir) if cfg.log_dir else (record / "logs" if record else None)
    if log_dir is None:  # a node's death is reported from its log: never let tracebacks reach the terminal
        log_dir = Path(tempfile.mkdtemp(prefix="robot_rl_deploy_logs_"))
    if record is not None and record.exists() and any(record.iterdir()):
        raise ConfigError(f"record: folder {record} exists and is not empty")
    if record is not None:
        record.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, record / "deploy_config.yaml")
    log_dir.mkdir(parents=True, exist_ok=True)
    group = NodeGroup(cfg.domain_id, log_dir)
    print(f"robot-rl deploy: ROS_DOMAIN_ID={group.domain_id} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST; node logs in "
          f"{log_dir}", flush=True)
    stop = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if record is not None:
            group.start("recorder", "recorder", {"output": str(record / "bag")})
        if cfg.sim:
            group.start("sim_robot", "sim_robot_node", {
                "robot": contract.robot, "backend": cfg.sim, "params": cfg.sim_params,
                "randomize_seed": cfg.sim_randomize,
                "randomize_task": str(contract.provenance.get("task", "a1_walk")),
                # a contract observing task quantities (an arm's object and goal) needs its task's scene
                "scene_task": str(contract.provenance.get("task", "")) if any(
                    t.name.startswith("extra.") for t in contract.obs_terms) else "",
                "command_joints": list(contract.joint_names),
                "command_rate_hz": float(contract.policy_rate_hz),
                "physics_rate_hz": float(contract.physics_rate_hz),
                "kp": float(contract.kp[0]), "kd": float(contract.kd[0])})
        policy = group.start("policy", "policy_node", {
            "bundle": str(args.bundle.resolve()), "autostart": True, "output_mode": cfg.output_mode,
            "realtime_priority": cfg.realtime_priority, **cfg.param})
        if cfg.cmd_vel:
            group.start("cmd_vel", "cmd_vel_publisher", {"vx": cfg.cmd_vel[0], "vy": cfg.cmd_vel[1],
                                                         "wz": cfg.cmd_vel[2]})
        t0 = time.monotonic()
        while not stop["flag"]:
            dead = [label for label, node in group.nodes.items() if not node.alive()]
            if dead:
                codes = {label: group.nodes[label].proc.returncode for label in dead}
                if "policy" in dead and codes["policy"] == 3:
                    raise BundleError(f"policy node refused to activate: {_last_line(policy)} "
                                      f"(log {policy.log_path})")
                raise RobotRLError("; ".join(f"{label} node exited with code {codes[label]}: "
                                             f"{_last_line(group.nodes[label])} (log {group.nodes[label].log_path})"
                                             for label in dead))
            if cfg.duration and time.monotonic() - t0 >= cfg.duration:
                break
            time.sleep(0.1)
    finally:
        codes = group.stop_all()
        for s, handler in old.items():
            signal.signal(s, handler)
        print(f"robot-rl deploy: stopped {codes}", flush=True)
    if record is not None:
        print(f"robot-rl deploy: bag in {record / 'bag'}", flush=True)
    return 0
