"""Start robot_rl nodes as separate processes on an isolated DDS domain, and stop them cleanly.

Every process gets `ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST` and the caller's `ROS_DOMAIN_ID`, so DDS traffic never
leaves the machine and parallel runs do not see each other. Used by `robot-rl deploy`, the ROS benchmark and tests.
Does not import rclpy.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

# Linux: domain ids 0..101 map to ports that do not collide with the ephemeral range; 0 is everyone's default.
DOMAIN_ID_RANGE = (1, 101)


def random_domain_id() -> int:
    return random.SystemRandom().randint(*DOMAIN_ID_RANGE)


def ros_env(domain_id: int, base: Mapping[str, str] | None = None) -> dict[str, str]:
    """Environment for a node process: localhost-only discovery, the given domain, one compute thread."""
    env = dict(os.environ if base is None else base)
    env["ROS_AUTOMATIC_DISCOVERY_RANGE"] = "LOCALHOST"
    env["ROS_DOMAIN_ID"] = str(int(domain_id))
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    return env


def format_param(value: Any) -> str:
    """A parameter value for `--ros-args -p name:=value` (YAML; JSON is a subset). Floats stay floats."""
    if isinstance(value, Path):
        value = str(value)
    if isinstance(value, float):
        return repr(value)
    return json.dumps(value)


def node_command(module: str, params: Mapping[str, Any] | None = None, name: str | None = None) -> list[str]:
    """Command line that runs `robot_rl.ros_nodes.<module>` with ROS parameters."""
    cmd = [sys.executable, "-m", f"robot_rl.ros_nodes.{module}", "--ros-args"]
    if name:
        cmd += ["-r", f"__node:={name}"]
    for key, value in (params or {}).items():
        cmd += ["-p", f"{key}:={format_param(value)}"]
    return cmd


class NodeProcess:
    """One node in its own process (own process group, so Ctrl-C in a terminal reaches it only through us)."""

    def __init__(self, label: str, cmd: list[str], env: Mapping[str, str], log: Path | None = None) -> None:
        self.label = label
        self.cmd = cmd
        self.log_path = log
        self._log: IO[bytes] | None = open(log, "wb") if log else None  # noqa: SIM115 - closed in wait()
        self.proc = subprocess.Popen(cmd, env=dict(env), stdout=self._log, stderr=subprocess.STDOUT if log else None,
                                     start_new_session=True)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def send(self, sig: int) -> None:
        if self.alive():
            os.kill(self.proc.pid, sig)

    def stop(self, timeout: float = 5.0) -> int:
        """SIGINT (rclpy shuts down cleanly), wait, then SIGKILL. Returns the exit code."""
        self.send(signal.SIGINT)
        try:
            return self.wait(timeout)
        except subprocess.TimeoutExpired:
            self.send(signal.SIGKILL)
            return self.wait(timeout)

    def kill(self) -> int:
        self.send(signal.SIGKILL)
        return self.wait(10.0)

    def wait(self, timeout: float | None = None) -> int:
        code = self.proc.wait(timeout)
        if self._log:
            self._log.close()
            self._log = None
        return code

    def output(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path and self.log_path.exists() else ""


class NodeGroup:
    """Processes started on one domain; `stop_all` stops them in reverse start order."""

    def __init__(self, domain_id: int | None = None, log_dir: Path | None = None) -> None:
        self.domain_id = random_domain_id() if domain_id is None else int(domain_id)
        self.env = ros_env(self.domain_id)
        self.log_dir = log_dir
        self.nodes: dict[str, NodeProcess] = {}

    def start(self, label: str, module: str, params: Mapping[str, Any] | None = None,
              name: str | None = None) -> NodeProcess:
        log = self.log_dir / f"{label}.log" if self.log_dir else None
        node = NodeProcess(label, node_command(module, params, name), self.env, log)
        self.nodes[label] = node
        return node

    def stop_all(self, timeout: float = 5.0) -> dict[str, int]:
        labels = list(reversed(list(self.nodes)))
        for label in labels:
            self.nodes[label].send(signal.SIGINT)
        deadline = time.monotonic() + timeout
        codes = {}
        for label in labels:
            node = self.nodes[label]
            try:
                codes[label] = node.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                codes[label] = node.kill()
        return codes

    def __enter__(self) -> NodeGroup:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop_all()
