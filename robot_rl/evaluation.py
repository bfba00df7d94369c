"""Deterministic evaluation of a policy in a batched environment: the one evaluator behind `robot-rl eval`,
`robot-rl bench transfer` and (through `evaluate`) fine-tuning's before/after evaluation.

One episode per environment (auto-reset would favour short episodes): the run ends when `episodes` episodes are
collected. Safety interventions are counted per policy step of an environment still in its first episode, from the
control step's per-row flag (`info["intervened"]`, one tolerance: robot_rl.control_step.INTERVENTION_TOL), so every
caller reports the same rate.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError, ContractError


def evaluate(policy: Callable[[np.ndarray], np.ndarray], env: Any, episodes: int, seed: int,
             max_steps: int = 100_000) -> dict[str, float]:
    """Run `policy(raw obs) -> actions` until `episodes` first episodes are collected; summary: `episodes`, every
    numeric episode metric in info["episodes"] as <key>_mean / <key>_std, and `safety_intervention_rate`
    (interventions per policy step of the environments still in their first episode)."""
    obs = env.reset(seed=seed)
    counted = np.zeros(env.num_envs, bool)
    results: list[dict[str, Any]] = []
    steps = interventions = 0
    for _ in range(max_steps):
        obs, _, terminated, truncated, info = env.step(policy(obs))
        active = ~counted
        interventions += int(np.asarray(info["intervened"], bool)[active].sum())
        steps += int(active.sum())
        finished = np.flatnonzero(np.asarray(terminated) | np.asarray(truncated))
        eps = info.get("episodes", [])
        pairs = zip(finished, eps) if len(eps) == len(finished) else ((-1, e) for e in eps)
        for i, ep in pairs:
            if i >= 0 and counted[i]:
                continue
            if i >= 0:
                counted[i] = True
            results.append(ep)
        if len(results) >= episodes or counted.all():
            break
    results = results[:episodes]
    summary: dict[str, float] = {"episodes": float(len(results))}
    keys = sorted({k for ep in results for k, v in ep.items() if isinstance(v, (int, float, np.number, bool))})
    for key in keys:
        values = np.array([float(ep[key]) for ep in results if key in ep])
        summary[f"{key}_mean"] = float(values.mean())
        summary[f"{key}_std"] = float(values.std())
    summary["safety_intervention_rate"] = interventions / max(steps, 1)
    return summary


def check_bundle_env(contract: Any, env_contract: Any) -> None:
    """Refuse an environment whose robot, joints, rates, action or observation layout differ from the bundle's."""
    contract.check_robot(env_contract.robot, env_contract.joint_names, env_contract.physics_rate_hz)
    if env_contract.action != contract.action:
        raise ContractError(f"bundle action {contract.action.type} (scale {contract.action.scale}) differs from the "
                            f"environment's {env_contract.action.type} (scale {env_contract.action.scale})")
    if env_contract.obs_terms != contract.obs_terms:
        raise ContractError("the environment's observation terms differ from the bundle contract's")


def use_bundle_safety(env: Any, contract: Any) -> None:
    """Run the bundle's own safety chain (contract.safety) instead of the one the current task config writes: a
    deployment runs what the bundle says, through the environment's `use_safety_chain` (a Gymnasium task's contract
    has no chain)."""
    from robot_rl.sim.env import load_safety_chain

    env.use_safety_chain(load_safety_chain(contract) if contract.safety else None)


def bundle_task(bundle: Any, source: str | Path) -> tuple[str, list[str]]:
    """(task, the training's task and evaluation overrides) recorded in a bundle's provenance."""
    prov = bundle.metadata
    task = prov.get("task")
    if not task:
        raise ConfigError(f"bundle {source} does not record its task in contract.json provenance")
    train_cfg = prov.get("config") or {}
    return str(task), [*train_cfg.get("task_overrides", []), *train_cfg.get("eval_overrides", [])]


def evaluate_bundle(bundle: Any, source: str | Path, backend: str, episodes: int, seed: int,
                    extra_overrides: list[str] | None = None) -> dict[str, Any]:
    """Deterministic evaluation of a loaded bundle in `backend` through its contract and its own safety chain, on
    its task as it was trained (plus `extra_overrides`)."""
    from robot_rl.runner import make_env

    task, overrides = bundle_task(bundle, source)
    env = make_env(task, episodes, seed, backend, [*overrides, *(extra_overrides or [])])
    try:
        check_bundle_env(bundle.contract, env.contract)
        use_bundle_safety(env, bundle.contract)
        summary = evaluate(bundle.act, env, episodes, seed)
    finally:
        env.close()
    return {"task": task, "backend": backend, **summary}
