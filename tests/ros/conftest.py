"""ROS 2 test fixtures: every test gets its own DDS domain with localhost-only discovery, real rclpy and DDS.

`probe` is an in-process rclpy node on that domain (publish, collect, call services, spin until a condition);
nodes under test run in separate processes through robot_rl.ros_nodes.procs with the same environment.
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

rclpy = pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed; pip install -e '.[ros]'")

from rclpy.context import Context  # noqa: E402
from rclpy.executors import SingleThreadedExecutor  # noqa: E402
from rclpy.node import Node  # noqa: E402
from sensor_msgs.msg import Imu, JointState  # noqa: E402

from robot_rl.ros_nodes.procs import DOMAIN_ID_RANGE, NodeGroup  # noqa: E402
from robot_rl.ros_nodes.qos import make_qos  # noqa: E402

_used_domains: set[int] = set()
DATA = Path(__file__).parent / "data"


def _unique_domain() -> int:
    rng = random.Random(os.getpid() ^ time.time_ns())
    while True:
        d = rng.randint(*DOMAIN_ID_RANGE)
        if d not in _used_domains:
            _used_domains.add(d)
            return d


@pytest.fixture
def ros_domain(monkeypatch: pytest.MonkeyPatch) -> int:
    domain = _unique_domain()
    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(domain))
    return domain


class Probe:
    """An rclpy node in the test process: the robot, the operator and the observer of the nodes under test."""

    def __init__(self, domain: int) -> None:
        self.context = Context()
        rclpy.init(context=self.context, domain_id=domain)
        self.node = Node("test_probe", context=self.context)
        self.executor = SingleThreadedExecutor(context=self.context)
        self.executor.add_node(self.node)
        self.received: dict[str, list[Any]] = {}
        self._pubs: dict[str, Any] = {}

    def collect(self, msg_type: Any, topic: str, qos: Any = 10) -> list[Any]:
        box: list[Any] = self.received.setdefault(topic, [])
        self.node.create_subscription(msg_type, topic, box.append, qos)
        return box

    def publisher(self, msg_type: Any, topic: str, qos: Any = 10) -> Any:
        key = f"{msg_type.__name__} {topic}"
        if key not in self._pubs:
            self._pubs[key] = self.node.create_publisher(msg_type, topic, qos)
        return self._pubs[key]

    def unpublish(self, msg_type: Any, topic: str) -> None:
        self.node.destroy_publisher(self._pubs.pop(f"{msg_type.__name__} {topic}"))

    def spin_for(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.executor.spin_once(timeout_sec=min(0.01, max(0.0, deadline - time.monotonic())))

    def spin_until(self, cond: Callable[[], bool], timeout: float, what: str = "condition",
                   every: Callable[[], None] | None = None, period: float = 0.005) -> None:
        """Spin until cond() holds; `every` runs each `period` (e.g. publish the robot state)."""
        deadline = time.monotonic() + timeout
        next_call = time.monotonic()
        while not cond():
            now = time.monotonic()
            if now > deadline:
                raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")
            if every is not None and now >= next_call:
                every()
                next_call = now + period
            self.executor.spin_once(timeout_sec=min(0.002, period))

    def call(self, srv_type: Any, name: str, request: Any, timeout: float = 10.0) -> Any:
        client = self.node.create_client(srv_type, name)
        if not client.wait_for_service(timeout_sec=timeout):
            raise AssertionError(f"service {name} not available")
        future = client.call_async(request)
        self.executor.spin_until_future_complete(future, timeout_sec=timeout)
        assert future.done(), f"service {name} did not answer"
        return future.result()

    def close(self) -> None:
        self.node.destroy_node()
        rclpy.try_shutdown(context=self.context)


@pytest.fixture
def probe(ros_domain: int) -> Iterator[Probe]:
    p = Probe(ros_domain)
    yield p
    p.close()


@pytest.fixture
def nodes(ros_domain: int, tmp_path: Path) -> Iterator[NodeGroup]:
    """Node processes on the test's domain; their logs are printed when the test fails."""
    group = NodeGroup(ros_domain, tmp_path / "logs")
    group.log_dir.mkdir()  # type: ignore[union-attr]
    yield group
    group.stop_all()
    for label, proc in group.nodes.items():
        print(f"----- {label} (exit {proc.proc.returncode}) -----\n{proc.output()[-4000:]}")


@pytest.fixture(scope="session")
def a1_bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An A1 bundle with an untrained actor (the real contract, network size and safety chain)."""
    from robot_rl.bench.ros import untrained_bundle

    return untrained_bundle(tmp_path_factory.mktemp("bundles") / "a1_untrained")


class RobotFeed:
    """Publishes JointState + Imu like a robot's drivers (joint order in the message chosen by the test)."""

    def __init__(self, probe: Probe, names: list[str], positions: np.ndarray, topic: str = "/joint_states",
                 imu_topic: str = "/imu") -> None:
        qos = make_qos("best_effort", "volatile", 5)
        self.js_pub = probe.publisher(JointState, topic, qos)
        self.imu_pub = probe.publisher(Imu, imu_topic, qos)
        self.probe = probe
        self.names = list(names)
        self.positions = np.asarray(positions, float)
        self.velocities = np.zeros(len(names))
        self.override: dict[str, Any] = {}
        self.enabled = True

    def message(self) -> JointState:
        msg = JointState(name=self.names, position=self.positions.tolist(), velocity=self.velocities.tolist())
        for key, value in self.override.items():
            setattr(msg, key, value)
        msg.header.stamp = self.probe.node.get_clock().now().to_msg()
        return msg

    def publish(self) -> None:
        if not self.enabled:
            return
        imu = Imu()
        imu.header.stamp = self.probe.node.get_clock().now().to_msg()
        imu.orientation.w = 1.0
        imu.linear_acceleration.z = 9.81
        self.imu_pub.publish(imu)
        self.js_pub.publish(self.message())


@pytest.fixture
def robot_feed() -> Callable[..., RobotFeed]:
    return RobotFeed



def cli(*args: str) -> list[str]:
    """The `robot-rl` command line as a subprocess argument list (this interpreter)."""
    return [sys.executable, "-m", "robot_rl.cli", *args]


@pytest.fixture
def start_deploy(ros_domain: int) -> Callable[..., subprocess.Popen[str]]:
    """start_deploy(bundle, out, *flags): `robot-rl deploy BUNDLE --sim mujoco --record OUT` on the test's domain,
    returned once its policy node has activated and run for 3 s; interrupted (Ctrl-C) if it does not get there."""

    def start(bundle: Path, out: Path, *extra: str) -> subprocess.Popen[str]:
        proc = subprocess.Popen(cli("deploy", str(bundle), "--sim", "mujoco", "--record", str(out), "--domain-id",
                                    str(ros_domain), *extra), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True)
        policy_log = out / "logs" / "policy.log"
        deadline = time.monotonic() + 60.0
        try:
            while not (policy_log.exists() and "activated" in policy_log.read_text()):
                assert proc.poll() is None, proc.communicate()[0]
                assert time.monotonic() < deadline, "policy node did not activate"
                time.sleep(0.2)
            time.sleep(3.0)
        except BaseException:
            proc.send_signal(2)  # SIGINT, what Ctrl-C delivers
            proc.communicate(timeout=30)
            raise
        return proc

    return start
