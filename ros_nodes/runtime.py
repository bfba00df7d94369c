"""Executor choice and the spin loop shared by every node's `main()`."""

from __future__ import annotations

import os
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
        for task in Path("/proc/self/task").iterdir():
            os.sched_setscheduler(int(task.name), os.SCHED_FIFO, param)
    except (OSError, AttributeError) as exc:
        logger.warning(f"realtime_priority {priority} not applied: {exc}")
        return False
    logger.info(f"SCHED_FIFO priority {priority}")
    return True
