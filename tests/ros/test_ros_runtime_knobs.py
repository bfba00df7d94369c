"""Real-time knobs (robot_rl.realtime, applied by the nodes and the benchmarks): CPU pinning and the PM QoS wake-up
latency request fail soft (warning, the process keeps running) and, where the machine allows them, take effect."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from robot_rl import realtime


class _Log:
    def __init__(self) -> None:
        self.warnings: list[str] = []
        self.infos: list[str] = []

    def warning(self, msg: str) -> None:
        self.warnings.append(msg)

    def info(self, msg: str) -> None:
        self.infos.append(msg)


def test_cpu_affinity_pins_every_thread_of_the_process() -> None:
    # a child process, so the test runner itself is never pinned
    code = ("import os, threading, time; from robot_rl.realtime import set_cpu_affinity\n"
            "class L:\n  def warning(self, m): print('W', m)\n  def info(self, m): pass\n"
            "t = threading.Thread(target=time.sleep, args=(1.0,)); t.start()\n"
            "ok = set_cpu_affinity([0], L())\n"
            "tids = [int(x) for x in os.listdir('/proc/self/task')]\n"
            "print(ok, sorted({c for tid in tids for c in os.sched_getaffinity(tid)}))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip().splitlines()[-1] == "True [0]"


def test_cpu_affinity_empty_or_impossible_leaves_the_scheduler_alone() -> None:
    log = _Log()
    before = os.sched_getaffinity(0)
    assert realtime.set_cpu_affinity([], log) is False
    assert realtime.set_cpu_affinity([100_000], log) is False
    assert os.sched_getaffinity(0) == before
    assert log.warnings and "not applied" in log.warnings[0]


def test_cpu_latency_request_is_optional_and_fails_soft(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = _Log()
    assert realtime.hold_cpu_latency(-1, log) is None and not log.warnings
    monkeypatch.setattr(realtime, "_PM_QOS", str(tmp_path / "missing" / "cpu_dma_latency"))
    assert realtime.hold_cpu_latency(0, log) is None
    assert "not applied" in log.warnings[0]


def test_cpu_latency_request_writes_the_bound(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel device takes a native int; a plain file stands in for the device node's write path
    target = tmp_path / "cpu_dma_latency"
    target.write_bytes(b"")
    monkeypatch.setattr(realtime, "_PM_QOS", str(target))
    fd = realtime.hold_cpu_latency(7, _Log())
    assert fd is not None
    os.close(fd)
    assert int.from_bytes(target.read_bytes(), sys.byteorder) == 7
