"""Sim-to-sim transfer: evaluate policy bundles in the engine they were trained in and in the other one, through
the bundle and its contract only (no trainer objects), and report the ratio cross-engine / in-engine.

`robot-rl bench transfer --bundle dr=runs/a1-dr/bundle --bundle nodr=runs/a1-nodr/bundle [--episodes 20]`

Both engines run the task's nominal world (randomization off, the bundle's own task and evaluation overrides
otherwise), so the only difference between the two evaluations is the engine. Per bundle and engine: mean return,
success rate, tracking error (locomotion), fall rate, and the share of policy steps the safety chain corrected.
`keep` = cross-engine return / in-engine return (and the same for success where the task defines it).
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.errors import ConfigError, ContractError

ENGINES = ("mujoco", "pybullet")


class InterventionCounter:
    """VecEnv wrapper counting policy steps whose targets the safety chain changed (info["safety"])."""

    def __init__(self, env: Any) -> None:
        self.env = env
        self.num_envs = env.num_envs
        self.steps = 0
        self.interventions = 0.0

    def reset(self, seed: int | None = None) -> np.ndarray:
        return self.env.reset(seed=seed)

    def step(self, actions: np.ndarray) -> tuple[Any, ...]:
        out = self.env.step(actions)
        flag = out[4].get("safety", {}).get("safety/intervened")
        if flag is not None:
            self.interventions += float(np.sum(np.asarray(flag, float)))
        self.steps += self.num_envs
        return out

    @property
    def intervention_rate(self) -> float:
        return self.interventions / max(self.steps, 1)


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
    deployment runs what the bundle says. The robot_rl environments keep their chain in `_chain`."""
    if hasattr(env, "_chain"):
        from robot_rl.sim.vec_env import load_safety_chain

        env._chain = load_safety_chain(contract) if contract.safety else None


def evaluate_bundle(bundle_dir: str | Path, backend: str, episodes: int, seed: int,
                    extra_overrides: list[str] | None = None) -> dict[str, Any]:
    """Deterministic evaluation of a bundle in `backend` through its contract; summary of the episodes."""
    from robot_rl.bundle import load_bundle
    from robot_rl.runner import evaluate, make_env

    bundle = load_bundle(bundle_dir)
    prov = bundle.metadata
    task = prov.get("task")
    if not task:
        raise ConfigError(f"bundle {bundle_dir} does not record its task in contract.json provenance")
    train_cfg = prov.get("config") or {}
    overrides = [*train_cfg.get("task_overrides", []), *train_cfg.get("eval_overrides", []),
                 *(extra_overrides or [])]
    env = make_env(task, episodes, seed, backend, overrides)
    try:
        check_bundle_env(bundle.contract, env.contract)
        use_bundle_safety(env, bundle.contract)
        counter = InterventionCounter(env)
        summary = evaluate(bundle.act, counter, episodes, seed)
    finally:
        env.close()
    return {"task": task, "backend": backend, **summary, "safety_intervention_rate": counter.intervention_rate}


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--bundle", action="append", required=True, metavar="NAME=PATH",
                        help="a bundle to evaluate in both engines (repeat)")
    parser.add_argument("--episodes", type=int, default=20, help="episodes per bundle and engine (default 20)")
    parser.add_argument("--seed", type=int, default=777)
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra task overrides for both engines (default adds randomization.enabled=false)")


def _keep(cross: dict[str, Any], home: dict[str, Any], key: str) -> float | None:
    if key not in cross or key not in home or abs(home[key]) < 1e-9:
        return None
    return round(float(cross[key] / home[key]), 3)


def run(args: argparse.Namespace) -> dict[str, Any]:
    if args.episodes < 1:
        raise ConfigError("--episodes must be >= 1")
    overrides = ["randomization.enabled=false", *args.overrides]
    rows = []
    for item in args.bundle:
        name, sep, path = item.partition("=")
        if not sep or not Path(path).is_dir():
            raise ConfigError(f"--bundle {item}: expected NAME=PATH to a bundle folder")
        from robot_rl.bundle import load_bundle

        prov = load_bundle(path).metadata
        home = str(prov.get("backend", "mujoco")).split()[0]
        if home not in ENGINES:
            raise ConfigError(f"bundle {path} was trained on '{home}', not one of {', '.join(ENGINES)}")
        other = ENGINES[1 - ENGINES.index(home)]
        randomized = bool((prov.get("randomization") or {}).get("enabled", True))
        res = {e: evaluate_bundle(path, e, args.episodes, args.seed, overrides) for e in (home, other)}
        row = {"name": name, "task": res[home]["task"], "trained_in": home, "trained_with_dr": randomized,
               "in_engine": res[home], "cross_engine": res[other],
               "keep_return": _keep(res[other], res[home], "return_mean"),
               "keep_success": _keep(res[other], res[home], "success_mean")}
        rows.append(row)
        nan = float("nan")
        print(f"{name}: {row['task']} trained in {home} (DR {randomized}): return {res[home]['return_mean']:.3f} -> "
              f"{res[other]['return_mean']:.3f} in {other} (keep {row['keep_return']}), success "
              f"{res[home].get('success_mean', nan):.2f} -> {res[other].get('success_mean', nan):.2f}", flush=True)
    return {"benchmark": "transfer", "episodes": args.episodes, "overrides": overrides, "rows": rows}
