"""Simulation throughput: vectorized env steps/s against a bare mj_step loop on the same model and thread count.

overhead_ratio = env_steps_per_s * decimation / raw_physics_steps_per_s: the share of raw physics speed the
environment keeps after control, observations, rewards, resets and randomization (1.0 = free). The raw loop is
measured in short phases interleaved with the environment's and the medians are reported, because a shared machine
drifts. With --threads > 1 a one-thread environment is interleaved too and `thread_speedup` reported.
"""

from __future__ import annotations

import argparse
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Any, Literal

import mujoco
import numpy as np

from robot_rl.config import add_field_flags, config_from_args
from robot_rl.errors import ConfigError
from robot_rl.realtime import hold_cpu_latency, set_realtime_priority


@dataclass(frozen=True)
class SimBenchConfig:
    """`robot-rl bench sim` settings (`--set num_envs=32 threads=2`, or the flags --num-envs 32 --threads 2)."""

    threads: int = 1
    """Physics threads."""
    num_envs: int = 64
    """Environments."""
    seconds: float = 3.0
    """Measuring time per phase [s]."""
    backend: Literal["mujoco", "pybullet"] = "mujoco"
    """Simulator backend (pybullet: the raw rate is bare stepSimulation, one thread)."""
    task: str = "a1_walk"
    """Registered task."""
    safety: bool = False
    """Include the safety chain in the env step."""
    realtime_priority: int = 0
    """SCHED_FIFO priority for the whole benchmark, physics threads included (0: the default scheduler)."""
    cpu_latency_us: int = -1
    """PM QoS CPU wake-up latency bound held while measuring (-1: leave alone; needs root)."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_field_flags(parser, SimBenchConfig, "num_envs=32 threads=2")


def _make_env(task: str, num_envs: int, threads: int, safety: bool, backend: str = "mujoco") -> Any:
    from robot_rl.sim import make_vec_env

    env = make_vec_env(task, num_envs, seed=0, overrides=[f"num_threads={threads}"], safety=safety, backend=backend)
    rng = np.random.default_rng(0)
    env.bench_actions = [rng.uniform(-0.5, 0.5, (num_envs, env.act_dim)) for _ in range(16)]
    for k in range(10):
        env.step(env.bench_actions[k])
    return env


def _env_rate(env: Any, seconds: float) -> float:
    steps, start = 0, time.perf_counter()
    while True:
        for action in env.bench_actions:
            env.step(action)
        steps += len(env.bench_actions)
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            return steps * env.num_envs / elapsed


def _raw_rate(env: Any, threads: int, seconds: float) -> float:
    """Bare mj_step loops over the environment's own worlds: every world's model (randomized as the env has it),
    started from the env's current state with its current controls, stepped in turn, one thread per share of
    worlds (GIL released inside mj_step). Same states means the same contacts: a standing robot is cheaper to
    simulate than the fallen and kicking ones the environment holds, and would flatter or penalize the ratio."""
    counts = [0] * threads
    stop = threading.Event()
    state_kind = mujoco.mjtState.mjSTATE_FULLPHYSICS
    worlds = list(range(env.num_envs))

    def work(i: int) -> None:
        mine = worlds[i::threads]
        models = [env.model(k) for k in mine]
        datas = []
        for k, m in zip(mine, models):
            d = mujoco.MjData(m)
            state, ctrl = env.physics_state(k)
            mujoco.mj_setState(m, d, state, state_kind)
            d.ctrl[:] = ctrl
            datas.append(d)
        n = 0
        while not stop.is_set():
            for m, d in zip(models, datas):
                for _ in range(env.decimation):
                    mujoco.mj_step(m, d)
            n += len(mine) * env.decimation
        counts[i] = n

    workers = [threading.Thread(target=work, args=(i,)) for i in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    time.sleep(seconds)
    stop.set()
    for w in workers:
        w.join()
    return sum(counts) / (time.perf_counter() - start)


def _scheduler() -> str:
    """This process's scheduling policy (e.g. "fifo:10" with --realtime-priority 10 or under `chrt -f 10`), so a
    result says how it was run: two-thread speedups differ between the default scheduler and SCHED_FIFO."""
    policy = os.sched_getscheduler(0)
    names = {os.SCHED_OTHER: "other", os.SCHED_FIFO: "fifo", os.SCHED_RR: "rr"}
    name = names.get(policy, str(policy))
    return name if policy == os.SCHED_OTHER else f"{name}:{os.sched_getparam(0).sched_priority}"


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = config_from_args(SimBenchConfig, args)
    if cfg.threads < 1 or cfg.num_envs < 1 or cfg.seconds <= 0:
        raise ConfigError("--threads and --num-envs must be >= 1, --seconds > 0")
    # before the environments exist: their physics threads inherit the policy
    log = logging.getLogger("robot_rl.bench")
    set_realtime_priority(cfg.realtime_priority, log)
    pm_qos = hold_cpu_latency(cfg.cpu_latency_us, log)
    env = _make_env(cfg.task, cfg.num_envs, cfg.threads, cfg.safety, cfg.backend)
    env1 = _make_env(cfg.task, cfg.num_envs, 1, cfg.safety, cfg.backend) if cfg.threads > 1 else None
    dec = env.decimation
    # Short interleaved phases, medians over rounds: a shared machine's load drifts between phases.
    rounds = 5
    phase = cfg.seconds / rounds
    env_rates, raw_rates, one_rates = [], [], []
    for _ in range(rounds):
        env_rates.append(_env_rate(env, phase))
        if cfg.backend == "pybullet":
            from robot_rl.sim.pybullet_backend import raw_physics_rate

            raw_rates.append(raw_physics_rate(env, phase))
        else:
            raw_rates.append(_raw_rate(env, cfg.threads, phase))
        if env1 is not None:
            one_rates.append(_env_rate(env1, phase))
    ratios = [e * dec / r for e, r in zip(env_rates, raw_rates)]
    result: dict[str, Any] = {
        "benchmark": "sim", "backend": cfg.backend, "task": cfg.task, "threads": cfg.threads,
        "num_envs": cfg.num_envs, "safety": bool(cfg.safety), "decimation": dec,
        "env_steps_per_s": round(float(np.median(env_rates)), 1),
        "raw_physics_steps_per_s": round(float(np.median(raw_rates)), 1),
        "overhead_ratio": round(float(np.median(ratios)), 3), "mujoco": mujoco.__version__,
        "scheduler": _scheduler(), "cpu_latency_us": cfg.cpu_latency_us if pm_qos is not None else -1,
        "load_avg_1min": round(os.getloadavg()[0], 2),
    }
    if pm_qos is not None:
        os.close(pm_qos)
    env.close()
    if env1 is not None:
        env1.close()
        result["env_steps_per_s_1_thread"] = round(float(np.median(one_rates)), 1)
        result["thread_speedup"] = round(float(np.median([a / b for a, b in zip(env_rates, one_rates)])), 3)
    print(f"sim bench: {result['env_steps_per_s']:.0f} env steps/s ({cfg.num_envs} envs, {cfg.threads} thread(s)), "
          f"raw {result['raw_physics_steps_per_s']:.0f} physics steps/s, overhead ratio {result['overhead_ratio']}")
    return result
