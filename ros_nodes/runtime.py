"""Executor choice, the spin loop and the real-time parameters shared by every node's `main()` (the OS-level
knobs themselves live in robot_rl.realtime, which benchmarks use without rclpy)."""

from __future__ import annotations

from typing import Any

import rclpy
from rclpy.node import Node

from robot_rl.realtime import hold_cpu_latency as hold_cpu_latency
from robot_rl.realtime import set_cpu_affinity as set_cpu_affinity
from robot_rl.realtime import set_realtime_priority as set_realtime_priority


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
