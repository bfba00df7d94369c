"""Executor choice and the spin loop shared by every node's `main()`."""

from __future__ import annotations

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
    finally:
        executor.remove_node(node)
        node.destroy_node()
        rclpy.try_shutdown()
