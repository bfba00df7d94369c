"""ROS 2 policy-node latency and sustained rate, against a bare rclpy echo node measured in the same run.

Round trip: this process (the driver) publishes Imu, then 1 ms later JointState, at a fixed pace and times the
JointState -> command round trip (on a robot the IMU streams on its own; the JointState triggers the tick). The
policy node runs event-driven (`trigger:=state`: one tick per JointState) in its own process; the echo node (its own
process, same topics/QoS/executor) republishes the positions at once. Blocks alternate policy/echo so drift on a
shared machine hits both. `ratio` = policy p50 / echo p50.

Sustain: the policy node runs its timer at `--sustain-hz` for `--sustain-s` while the driver feeds state at the same
rate; the node's own diagnostics report ticks and missed periods (a period whose tick never ran).
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from robot_rl.config import add_field_flags, config_from_args
from robot_rl.errors import BundleError, ConfigError


@dataclass(frozen=True)
class RosBenchConfig:
    """`robot-rl bench ros` settings (`--set sustain_s=10 samples=500`, or the flags --sustain-s 10 --samples 500)."""

    bundle: str = ""
    """Policy bundle folder (empty: the newest bundle under runs/, else an untrained A1 bundle)."""
    samples: int = 2000
    """Round trips per node."""
    blocks: int = 4
    """Alternating policy/echo blocks."""
    pace_hz: float = 200.0
    """State publishing rate in the round-trip run [Hz]."""
    sustain_hz: float = 500.0
    """Policy timer rate in the sustain run [Hz]."""
    sustain_s: float = 60.0
    """Length of the sustain run [s] (0 skips it)."""
    executor: Literal["single"] = "single"
    """rclpy executor of the nodes."""
    realtime_priority: int = 0
    """SCHED_FIFO priority for the policy and echo nodes and the driver (0: the default scheduler)."""
    cpu_latency_us: int = -1
    """PM QoS CPU wake-up latency bound held by the nodes and the driver (-1: leave alone)."""
    pin: bool = False
    """Pin the policy and echo nodes to the last CPU and the driver to the others."""
    no_ticks: bool = False
    """The policy node does not publish its tick records."""
    reference_tick: bool = False
    """The policy node runs observer -> bundle.act -> contract.act instead of the fused tick."""
    domain_id: int | None = None
    """ROS_DOMAIN_ID (empty: random)."""
    log_dir: str = ""
    """Node logs (empty: a temporary folder)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_field_flags(parser, RosBenchConfig, "sustain_s=10 samples=500")


def find_bundle(root: Path = Path("runs")) -> Path | None:
    """Newest folder under `root` that holds a contract.json and a policy.onnx."""
    found = [p.parent for p in root.glob("**/contract.json") if (p.parent / "policy.onnx").is_file()]
    return max(found, key=lambda p: p.stat().st_mtime) if found else None


def untrained_bundle(path: Path, task: str = "a1_walk") -> Path:
    """An A1 bundle with a randomly initialized actor: same network size and contract as a trained one."""
    import torch

    from robot_rl.bundle import export_bundle
    from robot_rl.sim import make_vec_env

    env = make_vec_env(task, num_envs=1, seed=0)
    contract = env.contract.replace(obs_mean=[0.0] * env.obs_dim, obs_std=[1.0] * env.obs_dim)
    env.close()
    torch.manual_seed(0)
    actor = torch.nn.Sequential(torch.nn.Linear(env.obs_dim, 256), torch.nn.ELU(), torch.nn.Linear(256, 128),
                                torch.nn.ELU(), torch.nn.Linear(128, env.act_dim))
    return export_bundle(path, contract, actor, metrics={"note": "untrained, benchmark only"})


def at_rate(bundle: Path, rate_hz: float, path: Path) -> Path:
    """A copy of `bundle` whose contract runs at `rate_hz` (benchmark only: the policy node refuses any rate but its
    contract's, and with trigger:=state ticks at most once per contract period)."""
    import shutil

    from robot_rl.contract import PolicyContract

    shutil.copytree(bundle, path)
    contract = PolicyContract.load(path / "contract.json")
    contract.replace(policy_rate_hz=rate_hz, physics_rate_hz=rate_hz).to_json(path / "contract.json")
    return path


class Driver:
    """Publishes Imu + JointState like a robot and times the command that comes back."""

    def __init__(self, contract: Any, domain_id: int) -> None:
        import rclpy
        from diagnostic_msgs.msg import DiagnosticArray
        from rclpy.context import Context
        from rclpy.node import Node
        from sensor_msgs.msg import Imu, JointState
        from std_msgs.msg import Float64MultiArray

        from robot_rl.ros_nodes.qos import make_qos

        os.environ["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain_id)
        self.node = Node("bench_driver", context=self.context)
        self.executor = rclpy.executors.SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        state_qos, cmd_qos = make_qos("best_effort", "volatile", 5), make_qos("reliable", "volatile", 1)
        self.js_pub = {k: self.node.create_publisher(JointState, f"/{k}/joint_states", state_qos)
                       for k in ("policy", "echo")}
        self.imu_pub = self.node.create_publisher(Imu, "/policy/imu", state_qos)
        self.received = 0
        self.recv_time = 0.0
        for k in ("policy", "echo"):
            self.node.create_subscription(Float64MultiArray, f"/{k}/commands", self._on_cmd, cmd_qos)
        self.diag: dict[str, str] = {}
        self.diag_count = 0
        self.node.create_subscription(DiagnosticArray, "/diagnostics", self._on_diag, 50)
        self.js = JointState(name=list(contract.joint_names), position=list(map(float, contract.default_joint_pos)),
                             velocity=[0.0] * contract.num_joints, effort=[0.0] * contract.num_joints)
        self.imu = Imu()
        self.imu.orientation.w = 1.0
        self.imu.linear_acceleration.z = 9.81

    def _on_diag(self, msg: Any) -> None:
        for st in msg.status:
            if "policy loop" in st.name and any(kv.key == "ticks" for kv in st.values):
                self.diag = {kv.key: kv.value for kv in st.values}
                self.diag_count += 1

    def _on_cmd(self, msg: Any) -> None:
        self.received += 1
        self.recv_time = time.perf_counter()

    def publish(self, target: str, imu: bool = True) -> float:
        stamp = self.node.get_clock().now().to_msg()
        self.imu.header.stamp = stamp
        self.js.header.stamp = stamp
        t0 = time.perf_counter()
        self.js_pub[target].publish(self.js)
        if target == "policy" and imu:
            self.imu_pub.publish(self.imu)
        return t0

    def publish_imu(self) -> None:
        self.imu.header.stamp = self.node.get_clock().now().to_msg()
        self.imu_pub.publish(self.imu)

    def wait_for(self, count: int, timeout: float) -> bool:
        deadline = time.perf_counter() + timeout
        while self.received < count:
            left = deadline - time.perf_counter()
            if left <= 0:
                return False
            self.executor.spin_once(timeout_sec=left)
        return True

    def spin_for(self, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while time.perf_counter() < deadline:
            self.executor.spin_once(timeout_sec=max(0.0, deadline - time.perf_counter()))

    def roundtrips(self, target: str, n: int, pace: float) -> tuple[np.ndarray, int]:
        rtt = np.full(n, np.nan)
        lost = 0
        next_t = time.perf_counter()
        for i in range(n):
            next_t += pace
            if target == "policy":
                # the IMU streams on its own and lands before the JointState that triggers the tick, as on a robot;
                # publishing it inside the timed window would time the driver's second publish, not the node
                self.publish_imu()
                self.spin_for(0.001)
            count = self.received
            t0 = self.publish(target, imu=False)
            if self.wait_for(count + 1, 0.1):
                rtt[i] = self.recv_time - t0
            else:
                lost += 1
            self.spin_for(max(0.0, next_t - time.perf_counter()))
        return rtt[np.isfinite(rtt)], lost

    def close(self) -> None:
        import rclpy

        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


def _diagnostics_values(driver: Driver, wait: Callable[[Callable[[], bool], float, str], Any] | None = None,
                        timeout: float = 10.0) -> dict[str, str]:
    """The next policy-loop diagnostic published after this call. `wait(done, timeout, what)` replaces plain
    spinning while it comes (the sustain run keeps feeding state meanwhile)."""
    count = driver.diag_count

    def arrived() -> bool:
        return driver.diag_count > count

    if wait is not None:
        wait(arrived, timeout, "no policy-loop diagnostics")
        return dict(driver.diag)
    deadline = time.perf_counter() + timeout
    while not arrived():
        if time.perf_counter() > deadline:
            raise BundleError(f"no policy-loop diagnostics within {timeout:g} s")
        driver.executor.spin_once(timeout_sec=0.05)
    return dict(driver.diag)


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = config_from_args(RosBenchConfig, args)
    from robot_rl.bundle import load_bundle
    from robot_rl.ros_nodes.procs import NodeGroup

    tmp = Path(tempfile.mkdtemp(prefix="robot_rl_bench_ros_"))
    bundle_path = Path(cfg.bundle) if cfg.bundle else find_bundle()
    if bundle_path is None:
        bundle_path = untrained_bundle(tmp / "bundle")
    if not Path(bundle_path).is_dir():
        raise BundleError(f"bundle not found: {bundle_path}")
    contract = load_bundle(bundle_path).contract
    if cfg.samples < cfg.blocks or cfg.blocks < 1:
        raise ConfigError("samples must be >= blocks >= 1")
    log_dir = Path(cfg.log_dir) if cfg.log_dir else tmp
    log_dir.mkdir(parents=True, exist_ok=True)
    group = NodeGroup(cfg.domain_id, log_dir)
    common = {"executor": cfg.executor, "qos.state.depth": 5, "realtime_priority": cfg.realtime_priority,
              "cpu_latency_us": cfg.cpu_latency_us}
    ncpu = os.cpu_count() or 1
    if cfg.pin and ncpu > 1:
        common["cpu_affinity"] = [ncpu - 1]
    # every paced JointState starts a contract period (the contract's rate is above the pace), so each is answered
    policy_params = {**common, "bundle": str(at_rate(bundle_path, 2 * cfg.pace_hz, tmp / "paced")),
                     "autostart": True, "trigger": "state",
                     "joint_states_topic": "/policy/joint_states", "imu_topic": "/policy/imu",
                     "command_topic": "/policy/commands", "publish_ticks": not cfg.no_ticks,
                     "fused_tick": not cfg.reference_tick}
    driver = Driver(contract, group.domain_id)
    if cfg.realtime_priority > 0:  # the driver is the robot's hardware loop: real-time too, as in ros2_control
        from robot_rl.realtime import set_realtime_priority

        set_realtime_priority(cfg.realtime_priority, driver.node.get_logger())
    from robot_rl.realtime import hold_cpu_latency

    pm_qos = hold_cpu_latency(cfg.cpu_latency_us, driver.node.get_logger())
    if cfg.pin and ncpu > 1:
        from robot_rl.realtime import set_cpu_affinity

        set_cpu_affinity(list(range(ncpu - 1)), driver.node.get_logger())
    result: dict[str, Any] = {"bundle": str(bundle_path), "executor": cfg.executor, "domain_id": group.domain_id,
                              "pace_hz": cfg.pace_hz, "ticks_published": not cfg.no_ticks,
                              "realtime_priority": cfg.realtime_priority, "cpu_latency_us": cfg.cpu_latency_us,
                              "pinned": bool(cfg.pin and ncpu > 1), "load_avg_1min": os.getloadavg()[0]}
    try:
        group.start("echo", "echo_node", {**common, "joint_states_topic": "/echo/joint_states",
                                          "command_topic": "/echo/commands"})
        # the policy node's configure waits for the first JointState/Imu: feed state until it answers
        policy = group.start("policy", "policy_node", policy_params)
        deadline = time.perf_counter() + 60.0
        while driver.received == 0:
            if not policy.alive() or time.perf_counter() > deadline:
                raise BundleError(f"policy node did not start (log: {policy.log_path}):\n{policy.output()[-2000:]}")
            driver.publish("policy")
            driver.spin_for(0.05)
        count = driver.received
        while True:  # the echo node is up when it answers
            driver.publish("echo")
            if driver.wait_for(driver.received + 1, 0.2):
                break
            if time.perf_counter() > deadline:
                raise BundleError("echo node did not answer")
        del count
        pace = 1.0 / cfg.pace_hz
        per_block = cfg.samples // cfg.blocks
        driver.roundtrips("policy", 100, pace)  # warm-up both paths
        driver.roundtrips("echo", 100, pace)
        rtts: dict[str, list[np.ndarray]] = {"policy": [], "echo": []}
        lost = {"policy": 0, "echo": 0}
        for _ in range(cfg.blocks):
            for target in ("policy", "echo"):
                r, n_lost = driver.roundtrips(target, per_block, pace)
                rtts[target].append(r)
                lost[target] += n_lost
        for target in ("policy", "echo"):
            r = np.concatenate(rtts[target]) * 1e6
            result[f"{target}_roundtrip_p50_us"] = round(float(np.percentile(r, 50)), 1)
            result[f"{target}_roundtrip_p99_us"] = round(float(np.percentile(r, 99)), 1)
            result[f"{target}_samples"] = int(r.size)
            result[f"{target}_lost"] = lost[target]
        result["ratio"] = round(result["policy_roundtrip_p50_us"] / result["echo_roundtrip_p50_us"], 3)
        diag = _diagnostics_values(driver)  # the node's own view of the same ticks: compute = receipt -> publish
        result["tick_path"] = diag.get("tick_path", "reference")
        result["policy_compute_p50_us"] = round(float(diag["compute_p50_ms"]) * 1e3, 1)
        result["policy_compute_p99_us"] = round(float(diag["compute_p99_ms"]) * 1e3, 1)
        # JointState header stamp (driver clock, before publish) -> node callback: DDS delivery + executor wake-up
        result["policy_state_latency_p50_us"] = round(float(diag["state_latency_p50_ms"]) * 1e3, 1)
        group.nodes.pop("policy").stop()
        group.nodes.pop("echo").stop()
        if cfg.sustain_s > 0:
            result.update(_sustain(driver, group, policy_params, cfg))
    finally:
        group.stop_all()
        driver.close()
        if pm_qos is not None:
            os.close(pm_qos)
    return result


def _sustain(driver: Driver, group: Any, policy_params: dict[str, Any], cfg: RosBenchConfig) -> dict[str, Any]:
    paced = Path(policy_params["bundle"])
    bundle = at_rate(paced, cfg.sustain_hz, paced.with_name("sustain"))  # the timer ticks at the contract's rate
    params = {**policy_params, "bundle": str(bundle), "trigger": "timer", "diagnostics_period_s": 0.5}
    # the stopped nodes' last commands and diagnostics may still be queued here: taken now, they cannot pass for
    # the new node's (a stale command once ended the start-up wait at once, and the node then starved of state)
    driver.spin_for(0.5)
    policy = group.start("policy_sustain", "policy_node", params)
    period = 1.0 / cfg.sustain_hz

    def feed_until(done: Callable[[], bool], timeout: float, what: str) -> int:
        """Publish the state at the sustain rate (the node always has a fresh one) until done(); states sent."""
        deadline = time.perf_counter() + timeout
        next_t = time.perf_counter()
        sent = 0
        while not done():
            if not policy.alive() or time.perf_counter() > deadline:
                raise BundleError(f"{what} within {timeout:g} s (log: {policy.log_path})")
            next_t += period
            driver.publish("policy")
            sent += 1
            driver.spin_for(max(0.0, next_t - time.perf_counter()))
        return sent

    start_count = driver.received
    feed_until(lambda: driver.received >= start_count + 10, 60.0, "the sustain policy node did not start")
    settle_end = time.perf_counter() + 1.0
    feed_until(lambda: time.perf_counter() >= settle_end, 5.0, "settle")
    first = _diagnostics_values(driver, feed_until)
    t_start = time.perf_counter()
    sent = feed_until(lambda: time.perf_counter() - t_start >= cfg.sustain_s, cfg.sustain_s + 5.0, "sustain")
    last = _diagnostics_values(driver, feed_until)
    group.nodes.pop("policy_sustain").stop()
    ticks = int(last["ticks"]) - int(first["ticks"])
    missed = int(last["missed_periods"]) - int(first["missed_periods"])
    backup = sum(int(last[k]) - int(first[k]) for k in last if k.startswith("ticks_") and k != "ticks_policy")
    return {"sustain_hz": cfg.sustain_hz, "sustain_s": cfg.sustain_s, "sustain_ticks": ticks,
            "sustain_missed_periods": missed, "sustain_missed_fraction": round(missed / max(1, ticks + missed), 6),
            "sustain_backup_ticks": backup, "sustain_states_sent": sent,
            "sustain_tick_period_p99_ms": float(last.get("period_p99_ms", "nan")),
            "sustain_tick_period_max_ms": float(last.get("period_max_ms", "nan")),
            "sustain_compute_p99_ms": float(last.get("compute_p99_ms", "nan"))}
