"""Real-time knobs for a process: SCHED_FIFO, CPU pinning and the PM QoS wake-up latency request.

The ROS 2 nodes apply them from their parameters (robot_rl.ros_nodes.runtime.declare_realtime); the benchmarks apply
them from their flags, so a measurement can say how the machine was scheduled. Each fails soft: a warning through
`logger` and the process runs normally.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path
from typing import Any


def set_realtime_priority(priority: int, logger: Any) -> bool:
    """SCHED_FIFO at `priority` (1..99) for every thread of this process (executor, DDS and physics threads), as
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
    """Pin every thread of this process (executor, DDS and physics threads) to `cpus`, as ros2_control's
    `cpu_affinity` does for its control loop: a tick that always wakes on the same core finds its code and data still
    in that core's caches. An empty list leaves the scheduler free."""
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
