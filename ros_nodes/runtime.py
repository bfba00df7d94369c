"""Executor choice and the spin loop shared by every node's `main()`."""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any

import rclpy
from rclpy.node import Node


def make_executor(kind: str = "single") -> Any:
    """rclpy's SingleThreadedExecutor: a node's callbacks share state, and a thread pool (MultiThreadedExecutor)
    only adds overhead on few cores. (rclpy.experimental.EventsExecutor busy-looped and hung with the Kilted
    wheels on our machine, so it is not offered.)"""
    if kind == "single":
        return rclpy.executors.SingleThreadedExecutor()
    raise ValueError(f"executor '{kind}' is not supported (single)")


def spin(node: Node, executor_kind: str = "single") -> None:
    """Spin until Ctrl-C / SIGTERM (rclpy's signal handlers shut the context down), then destroy the node."""
    from rclpy.executors import ExternalShutdownException

    executor = make_executor(executor_kind)
    executor.add_node(node)
    try:
        executor.spin()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception:
        # a callback that was mid-publish when SIGINT/SIGTERM shut the context down fails with "publisher's
        # context is invalid": that is the shutdown we asked for, not an error; anything else still raises
        if node.context.ok():
            raise
    finally:
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()


def set_realtime_priority(priority: int, logger: Any) -> bool:
    """SCHED_FIFO at `priority` (1..99) for every thread of this process (executor and DDS threads), as
    ros2_control does for its control loop; 0 leaves the default scheduler. Needs CAP_SYS_NICE (or root, or an
    rtprio limit in /etc/security/limits.conf); without it the node logs a warning and runs normally."""
    if priority <= 0:
        return False
    try:
        param = os.sched_param(min(int(priority), 99))
        for tid in _threads():
            os.sched_setscheduler(tid, os.SCHED_FIFO, param)
    except (OSError, AttributeError) as exc:
        logger.warning(f"realtime_priority {priority} not applied: {exc}")
        return False
    logger.info(f"SCHED_FIFO priority {priority}")
    return True


_PM_QOS = "/dev/cpu_dma_latency"


def hold_cpu_latency(max_us: int, logger: Any) -> int | None:
    """Ask the kernel (PM QoS, /dev/cpu_dma_latency) to keep every CPU's wake-up latency under `max_us`, i.e. out of
    the deep idle states that flush caches and make each control tick start cold; held while the returned file
    descriptor is open (this process's lifetime). The standard real-time Linux knob (cyclictest --latency); -1 leaves
    the system alone. Needs write access to the device (root); otherwise the node logs a warning and runs normally."""
    if max_us < 0:
        return None
    try:
        fd = os.open(_PM_QOS, os.O_WRONLY)
        os.write(fd, struct.pack("i", int(max_us)))
    except OSError as exc:
        logger.warning(f"cpu_latency_us {max_us} not applied: {exc}")
        return None
    logger.info(f"PM QoS: CPU wake-up latency <= {max_us} us while this node runs")
    return fd


def set_cpu_affinity(cpus: list[int], logger: Any) -> bool:
    """Pin every thread of this process (executor and DDS threads) to `cpus`, as ros2_control's `cpu_affinity` does
    for its control loop: a tick that always wakes on the same core finds its code and data still in that core's
    caches. An empty list leaves the scheduler free."""
    if not cpus:
        return False
    try:
        for tid in _threads():
            os.sched_setaffinity(tid, set(cpus))
    except (OSError, ValueError) as exc:
        logger.warning(f"cpu_affinity {cpus} not applied: {exc}")
        return False
    logger.info(f"pinned to CPUs {sorted(set(cpus))}")
    return True


def _threads() -> list[int]:
    """Thread ids of this process (executor and DDS threads alike)."""
    return [int(task.name) for task in Path("/proc/self/task").iterdir()]


def declare_realtime(node: Node) -> int | None:
    """Declare and apply the real-time parameters every node's `main()` offers: `cpu_affinity` ([-1]: not pinned; an
    integer-array parameter cannot be empty), `realtime_priority` (0: default scheduler) and `cpu_latency_us` (-1:
    leave alone). Returns the PM QoS file descriptor, which must stay open for as long as the node runs."""
    node.declare_parameter("realtime_priority", 0)
    node.declare_parameter("cpu_latency_us", -1)
    node.declare_parameter("cpu_affinity", [-1])
    logger = node.get_logger()
    set_cpu_affinity([c for c in node.get_parameter("cpu_affinity").value if c >= 0], logger)
    set_realtime_priority(int(node.get_parameter("realtime_priority").value), logger)
    return hold_cpu_latency(int(node.get_parameter("cpu_latency_us").value), logger)
