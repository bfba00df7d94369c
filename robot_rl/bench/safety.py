"""Safety-chain latency: the CBF-QP certify call and the whole chain for the A1 (12 joints), against cvxpy.

cvxpy solves the same QP (weighted distance to the policy target subject to every barrier row of the filter, level
0, written out densely) in the same run, so `speedup` is a ratio measured on the same machine at the same time.
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any, cast

import numpy as np

from robot_rl.config import add_field_flags, config_from_args
from robot_rl.contract import PolicyContract
from robot_rl.safety import Batch, CbfFilter, SafetyChain, build_chain
from robot_rl.state import RobotState

_A1_LOWER = [-0.80, -1.05, -2.70] * 4
_A1_UPPER = [0.80, 4.19, -0.92] * 4


def a1_contract(safety: list[dict[str, Any]]) -> PolicyContract:
    """A1-sized contract (limits from the URDF in pybullet_data, legged_gym gains, 50 Hz / 200 Hz)."""
    n = 12
    return PolicyContract(robot="a1", joint_names=[f"j{i}" for i in range(n)],
                          default_joint_pos=[0.0, 0.9, -1.8] * 4, joint_pos_lower=_A1_LOWER,
                          joint_pos_upper=_A1_UPPER, joint_vel_limit=[21.0] * n, torque_limit=[33.5] * n,
                          kp=[20.0] * n, kd=[0.5] * n, safety=safety)


@dataclass(frozen=True)
class SafetyBenchConfig:
    """`robot-rl bench safety` settings (`--set iters=1000`, or the flag --iters 1000)."""

    iters: int = 3000
    """Timed certify calls per figure."""
    cvxpy_iters: int = 100
    """Timed cvxpy solves (the reference QP)."""
    envs: int = 64
    """Environments for the batched figure."""
    seed: int = 0
    """Seed of the sampled states and targets."""


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_field_flags(parser, SafetyBenchConfig, "iters=1000 envs=16")


def _states(rng: np.random.Generator, c: PolicyContract, k: int) -> list[tuple[RobotState, np.ndarray]]:
    lo, hi = np.asarray(c.joint_pos_lower), np.asarray(c.joint_pos_upper)
    out = []
    for _ in range(k):
        q = rng.uniform(lo, hi)
        v = rng.uniform(-5.0, 5.0, q.shape)
        st = RobotState(joint_pos=q, joint_vel=v, base_quat=np.array([1.0, 0, 0, 0]), base_ang_vel=np.zeros(3),
                        base_lin_acc=np.zeros(3))
        out.append((st, q + rng.uniform(-1.0, 1.0, q.shape)))
    return out


def _time(fn: Any, samples: list[Any], iters: int) -> np.ndarray:
    times = np.empty(iters)
    for i in range(iters):
        st, u = samples[i % len(samples)]
        t0 = time.perf_counter()
        fn(st, u)
        times[i] = time.perf_counter() - t0
    return times * 1e6


def _cbf(chain: SafetyChain) -> CbfFilter:
    cbf = chain.cbf
    assert cbf is not None
    return cast(CbfFilter, cbf)


def _one(cbf: CbfFilter) -> Any:
    """The CBF filter alone on one robot (a batch of one): (state, targets) -> (targets (n,), telemetry (1,) each)."""

    def certify(st: RobotState, u: np.ndarray) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        res = cbf.certify(Batch(st.joint_pos[None], st.joint_vel[None]), u[None])
        return res.targets[0], res.info

    return certify


def run(args: argparse.Namespace) -> dict[str, Any]:
    cfg = config_from_args(SafetyBenchConfig, args)
    rng = np.random.default_rng(cfg.seed)
    cbf_cfg = {"type": "cbf", "joint_inertia": [0.025, 0.029, 0.017] * 4, "gamma": 0.5}
    cbf_chain = build_chain(a1_contract([cbf_cfg]))
    daqp_chain = build_chain(a1_contract([{**cbf_cfg, "solver": "daqp"}]))
    full = build_chain(a1_contract([{"type": "sanity"}, {"type": "state", "max_tilt": 1.0},
                                    {"type": "rate_limit", "max_rate": 20.0}, cbf_cfg, {"type": "passivity"}]))
    samples = _states(rng, cbf_chain.contract, 200)
    cbf = _cbf(cbf_chain)
    cbf_one = _one(cbf)
    _time(cbf_one, samples, 200)
    t_cbf = _time(cbf_one, samples, cfg.iters)
    t_daqp = _time(_one(_cbf(daqp_chain)), samples, cfg.iters)

    t_chain = _time(full.certify, samples, cfg.iters)
    from robot_rl.sim.locomotion import LocomotionSafetyConfig  # the chain a1_walk writes (robust CBF, 3 scales)

    task_chain = build_chain(a1_contract(LocomotionSafetyConfig().entries([0.035, 0.033, 0.017] * 4)))
    t_task = _time(task_chain.certify, samples, cfg.iters)
    # most random bench states violate the robust margins (every relaxation level is evaluated); a walking robot
    # lives in level 0, so time that case too
    task_cbf = _one(_cbf(task_chain))
    feasible = [x for x in samples if task_cbf(*x)[1]["cbf/level"][0] == 0] or samples
    t_task_ok = _time(task_chain.certify, feasible, cfg.iters)

    import cvxpy as cp

    n = 12
    g0, h0 = cbf.rows[0].explicit(samples[0][0].joint_pos, samples[0][0].joint_vel)
    x = cp.Variable(n)
    g_par, h_par, u_par = cp.Parameter(g0.shape), cp.Parameter(h0.shape), cp.Parameter(n)
    prob = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - u_par)), [g_par @ x <= h_par])
    t_cvx = np.empty(cfg.cvxpy_iters)
    max_diff = 0.0
    for i in range(cfg.cvxpy_iters):
        st, u = samples[i % len(samples)]
        t0 = time.perf_counter()
        g, h = cbf.rows[0].explicit(st.joint_pos, st.joint_vel)
        if g.shape != g0.shape:
            continue
        g_par.value, h_par.value, u_par.value = g, h, u
        prob.solve(solver=cp.CLARABEL if "CLARABEL" in cp.installed_solvers() else None)
        t_cvx[i] = time.perf_counter() - t0
        ref, info = cbf_one(st, u)
        if info["cbf/level"][0] == 0 and x.value is not None:
            max_diff = max(max_diff, float(np.abs(ref - x.value).max()))
    t_cvx *= 1e6

    num = cfg.envs
    bst = [s for s, _ in samples[:num]]
    batched = RobotState(joint_pos=np.stack([s.joint_pos for s in bst]), joint_vel=np.stack([s.joint_vel for s in bst]),
                         base_quat=np.tile([1.0, 0, 0, 0], (num, 1)), base_ang_vel=np.zeros((num, 3)),
                         base_lin_acc=np.zeros((num, 3)))
    targets = np.stack([u for _, u in samples[:num]])
    reps = max(cfg.iters // 20, 20)
    env_rows = Batch(batched.joint_pos, batched.joint_vel)
    t_batch = _time(lambda s, u: cbf.certify(env_rows, targets), [(None, None)], reps)
    t_chain_batch = _time(lambda s, u: full.certify_batch(batched, targets), [(None, None)], reps)
    cbf_p50 = float(np.percentile(t_cbf, 50))
    cvx_p50 = float(np.percentile(t_cvx, 50))
    return {
        "cbf_p50_us": round(cbf_p50, 2), "cbf_p99_us": round(float(np.percentile(t_cbf, 99)), 2),
        "cbf_daqp_p50_us": round(float(np.percentile(t_daqp, 50)), 2),
        "chain_p50_us": round(float(np.percentile(t_chain, 50)), 2),
        "chain_p99_us": round(float(np.percentile(t_chain, 99)), 2),
        "a1_walk_chain_p50_us": round(float(np.percentile(t_task, 50)), 2),
        "a1_walk_chain_feasible_p50_us": round(float(np.percentile(t_task_ok, 50)), 2),
        "a1_walk_feasible_states": len(feasible),
        "cvxpy_p50_us": round(cvx_p50, 1), "speedup": round(cvx_p50 / cbf_p50, 1),
        "cvxpy_max_abs_diff": max_diff, "rows": int(g0.shape[0]),
        "batch_envs": num, "cbf_batch_per_env_us": round(float(np.percentile(t_batch, 50)) / num, 2),
        "chain_batch_per_env_us": round(float(np.percentile(t_chain_batch, 50)) / num, 2),
    }
