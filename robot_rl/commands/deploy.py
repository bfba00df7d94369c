"""`robot-rl deploy BUNDLE`: run a policy bundle through ROS 2, optionally against a simulated robot and recording.

Each node runs in its own process on an isolated DDS domain (ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST and
ROS_DOMAIN_ID from --domain-id, random by default). Start order: recorder, simulated robot, policy node (its configure
waits for the first /joint_states). Ctrl-C sends SIGINT to every child, waits, then kills what is left. On a real
robot leave out --sim and pass the robot's topics with --param (see docs/deploy.md).
"""

from __future__ import annotations

import argparse
import signal
import time
from pathlib import Path
from typing import Any

from robot_rl.errors import BundleError, ConfigError


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="policy bundle folder (contract.json + policy.onnx)")
    parser.add_argument("--sim", choices=["mujoco", "pybullet"], default=None,
                        help="also start a simulated robot on this engine")
    parser.add_argument("--sim-params", default="", help="JSON physical parameters for the simulated robot "
                        "(e.g. '{\"friction\": 0.6, \"added_mass\": 1.0}')")
    parser.add_argument("--sim-randomize", type=int, default=-1, metavar="SEED",
                        help="draw the simulated robot's physical parameters from the training ranges (seeded); "
                        "--sim-params override single values")
    parser.add_argument("--record", type=Path, default=None, help="record a rosbag2 (MCAP) bag into this folder")
    parser.add_argument("--duration", type=float, default=0.0, help="stop after S seconds (0: until Ctrl-C)")
    parser.add_argument("--cmd-vel", type=float, nargs=3, metavar=("VX", "VY", "WZ"), default=None,
                        help="publish this constant cmd_vel (Twist) for the whole run")
    parser.add_argument("--domain-id", type=int, default=None, help="ROS_DOMAIN_ID (default: random in 1..101)")
    parser.add_argument("--output-mode", choices=["forward", "trajectory"], default="forward")
    parser.add_argument("--realtime-priority", type=int, default=0,
                        help="SCHED_FIFO priority of the policy node (needs CAP_SYS_NICE; 0: default scheduler)")
    parser.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                        help="extra policy-node ROS parameter (repeatable), e.g. imu_topic=/imu/data")
    parser.add_argument("--log-dir", type=Path, default=None, help="node logs (default: RECORD/logs or stdout)")


def _parse_params(items: list[str]) -> dict[str, Any]:
    import yaml

    out: dict[str, Any] = {}
    for item in items:
        if "=" not in item:
            raise ConfigError(f"--param '{item}' is not KEY=VALUE")
        key, value = item.split("=", 1)
        out[key] = yaml.safe_load(value)
    return out


def run(args: argparse.Namespace) -> int:
    from robot_rl.bundle import load_bundle
    from robot_rl.ros_nodes.procs import NodeGroup

    bundle = load_bundle(args.bundle)  # refuse an unreadable bundle before starting anything
    contract = bundle.contract
    extra = _parse_params(args.param)
    log_dir = args.log_dir or (args.record / "logs" if args.record else None)
    if args.record is not None and args.record.exists() and any(args.record.iterdir()):
        raise ConfigError(f"--record folder {args.record} exists and is not empty")
    if log_dir:
        log_dir.mkdir(parents=True, exist_ok=True)
    group = NodeGroup(args.domain_id, log_dir)
    print(f"robot-rl deploy: ROS_DOMAIN_ID={group.domain_id} ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST", flush=True)
    stop = {"flag": False}

    def on_signal(signum: int, frame: Any) -> None:
        stop["flag"] = True

    old = {s: signal.signal(s, on_signal) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        if args.record:
            group.start("recorder", "recorder", {"output": str(args.record / "bag")})
        if args.sim:
            group.start("sim_robot", "sim_robot_node", {
                "robot": contract.robot, "backend": args.sim, "params": args.sim_params,
                "randomize_seed": args.sim_randomize,
                "randomize_task": str(contract.provenance.get("task", "a1_walk")),
                "command_joints": list(contract.joint_names),
                "command_rate_hz": float(contract.policy_rate_hz),
                "physics_rate_hz": float(contract.physics_rate_hz),
                "kp": float(contract.kp[0]), "kd": float(contract.kd[0])})
        policy = group.start("policy", "policy_node", {
            "bundle": str(args.bundle.resolve()), "autostart": True, "output_mode": args.output_mode,
            "realtime_priority": args.realtime_priority, **extra})
        if args.cmd_vel is not None:
            group.start("cmd_vel", "cmd_vel_publisher", {"vx": args.cmd_vel[0], "vy": args.cmd_vel[1],
                                                         "wz": args.cmd_vel[2]})
        t0 = time.monotonic()
        while not stop["flag"]:
            dead = [label for label, node in group.nodes.items() if not node.alive()]
            if dead:
                codes = {label: group.nodes[label].proc.returncode for label in dead}
                if "policy" in dead and codes["policy"] == 3:
                    raise BundleError("policy node refused to activate (see its log line above"
                                      + (f" or {policy.log_path}" if policy.log_path else "") + ")")
                raise BundleError(f"node(s) exited: {codes}")
            if args.duration and time.monotonic() - t0 >= args.duration:
                break
            time.sleep(0.1)
    finally:
        codes = group.stop_all()
        for s, handler in old.items():
            signal.signal(s, handler)
        print(f"robot-rl deploy: stopped {codes}", flush=True)
    if args.record:
        print(f"robot-rl deploy: bag in {args.record / 'bag'}", flush=True)
    return 0
