"""Executor choice, the spin loop and the real-time parameters shared by every node's `main()` (the OS-level
knobs themselves live in robot_rl.realtime, which benchmarks use without rclpy)."""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any

import rclpy
from rclpy.node import Node
from rclpy.signals import SignalHandlerOptions

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


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
STOP_POLL_S = 0.1  # the longest a stop request waits to be seen


def init(args: list[str] | None = None) -> None:
    """rclpy.init without rclpy's signal handlers: `spin` handles SIGINT/SIGTERM itself (see there)."""
    rclpy.init(args=args, signal_handler_options=SignalHandlerOptions.NO)


def spin(node: Node, executor_kind: str = "single",
         on_exit: Callable[[BaseException | None], None] | None = None) -> None:
    """Spin until SIGINT/SIGTERM, then destroy the node. A callback's exception ends the spin and is raised again;
    `on_exit(exception or None)` runs first, while the node can still publish (a policy node's last command).

    A stop signal only sets a flag; the loop checks it between callbacks. Python's default (KeyboardInterrupt raised
    wherever the main thread happens to be) aborted callbacks halfway: the recorder lost a whole bag split when the
    signal landed inside a rotation. A second signal raises KeyboardInterrupt as usual, so a hung callback can still be
    interrupted from a terminal. Call `init` (not bare rclpy.init) first so rclpy does not install handlers of its own.
    """
    from rclpy.executors import ExternalShutdownException

    stop_requests: list[int] = []

    def request_stop(signum: int, frame: Any) -> None:
        if stop_requests:
            raise KeyboardInterrupt
        stop_requests.append(signum)

    previous = {sig: signal.signal(sig, request_stop) for sig in STOP_SIGNALS}
    # the handler runs only once the executor's wait returns: this timer bounds that wait (spin_once(timeout) would
    # too, but it builds a new rcl timer for every wait, 500+ times a second in a policy node)
    stop_poll = node.create_timer(STOP_POLL_S, lambda: None)
    executor = make_executor(executor_kind)
    executor.add_node(node)
    failure: BaseException | None = None
    try:
        while not stop_requests and node.context.ok():
            executor.spin_once()
    except (KeyboardInterrupt, ExternalShutdownException):
        pass
    except Exception as exc:
        # a callback that was mid-publish when something shut the context down fails with "publisher's context is
        # invalid": that is a shutdown, not an error; anything else still raises
        if node.context.ok():
            failure = exc
            raise
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if on_exit is not None:
            on_exit(failure)
        node.destroy_timer(stop_poll)
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
