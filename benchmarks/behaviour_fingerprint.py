"""Fingerprint of what the environments and the safety chain compute, to prove a restructuring changed no behaviour.

For every registered task, on each engine, with and without the safety chain: seeded random actions for a few
hundred policy steps; SHA-256 over observations, rewards, each reward term, terminations, truncations and the
applied actions. For every task's contract: the chain's targets and numeric telemetry on a fixed stream of
perturbed states, through the single-robot and the batched path.

    python benchmarks/behaviour_fingerprint.py --out fingerprint.json
    python benchmarks/behaviour_fingerprint.py --compare fingerprint.json   # exit 1 on any difference

Prints one JSON object on its last line. Hashes are bit-exact: compare on the same machine and install.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import sys
from typing import Any

import numpy as np


def _digest(h: Any, value: Any) -> None:
    arr = np.ascontiguousarray(np.asarray(value, dtype=np.float64))
    h.update(str(arr.shape).encode())
    h.update(arr.tobytes())


def _has_safety_switch(cfg: Any) -> bool:
    """Tasks whose chain is switched by a boolean `safety` field (the arms); others always carry theirs."""
    return isinstance(getattr(cfg, "safety", None), bool)


def env_fingerprint(task: str, backend: str, safety: bool, steps: int, num_envs: int = 4) -> dict[str, str]:
    from robot_rl.sim import make_vec_env, resolve_config

    overrides = ["safety=true"] if safety and _has_safety_switch(resolve_config(task)) else []
    env = make_vec_env(task, num_envs, seed=7, backend=backend, overrides=overrides, safety=safety)
    rng = np.random.default_rng(11)
    hashes = {k: hashlib.sha256() for k in ("obs", "reward", "terms", "terminated", "truncated", "applied", "safety")}
    obs = env.reset()
    _digest(hashes["obs"], obs)
    clip = float(env.contract.action.clip)
    for _ in range(steps):
        a = rng.uniform(-clip, clip, size=(num_envs, env.act_dim))
        obs, rew, term, trunc, info = env.step(a)
        _digest(hashes["obs"], obs)
        _digest(hashes["reward"], rew)
        for name in sorted(info["reward_terms"]):
            hashes["terms"].update(name.encode())
            _digest(hashes["terms"], info["reward_terms"][name])
        _digest(hashes["terminated"], term)
        _digest(hashes["truncated"], trunc)
        _digest(hashes["applied"], info["applied_action"])
        for key in sorted(info.get("safety", {})):
            val = info["safety"][key]
            if isinstance(val, np.ndarray) and val.dtype.kind in "biuf":
                hashes["safety"].update(key.encode())
                _digest(hashes["safety"], val)
    env.close()
    return {k: h.hexdigest()[:16] for k, h in hashes.items()}


def chain_fingerprint(task: str, steps: int) -> dict[str, str] | None:
    from robot_rl.safety import build_chain
    from robot_rl.sim import resolve_config
    from robot_rl.sim.registry import get_task
    from robot_rl.state import RobotState

    cfg = resolve_config(task)
    if _has_safety_switch(cfg):
        cfg = dataclasses.replace(cfg, safety=True)
    contract = get_task(task).make_task(cfg).contract
    if not contract.safety:
        return None
    n = contract.num_joints
    default = np.asarray(contract.default_joint_pos, float)
    rng = np.random.default_rng(5)
    hashes = {k: hashlib.sha256() for k in ("single", "batch", "telemetry")}
    single, batched = build_chain(contract), build_chain(contract)
    nb = 3
    for t in range(steps):
        q = default + rng.normal(0, 0.3, size=(nb, n))
        v = rng.normal(0, 2.0, size=(nb, n))
        quat = np.tile([1.0, 0.0, 0.0, 0.0], (nb, 1)) + rng.normal(0, 0.05, size=(nb, 4))
        quat /= np.linalg.norm(quat, axis=1, keepdims=True)
        targets = q + rng.normal(0, 0.5, size=(nb, n))
        if t % 50 == 17:
            targets[0, 0] = np.nan
        state = RobotState(joint_pos=q, joint_vel=v, base_quat=quat, base_ang_vel=rng.normal(0, 0.5, (nb, 3)),
                           base_lin_acc=np.tile([0.0, 0.0, 9.81], (nb, 1)), timestamp=np.full(nb, t * 0.02),
                           base_pos=np.tile([0.0, 0.0, 0.3], (nb, 1)))
        one = RobotState(joint_pos=q[0], joint_vel=v[0], base_quat=quat[0], base_ang_vel=state.base_ang_vel[0],
                         base_lin_acc=state.base_lin_acc[0], timestamp=t * 0.02, base_pos=state.base_pos[0])
        safe, info = single.certify(one, targets[0], now=t * 0.02)
        _digest(hashes["single"], safe)
        for key in sorted(info):
            val = info[key]
            if isinstance(val, (bool, int, float, np.ndarray)) and not isinstance(val, str):
                hashes["telemetry"].update(key.encode())
                _digest(hashes["telemetry"], val)
        safe_b, info_b = batched.certify_batch(state, targets)
        _digest(hashes["batch"], safe_b)
        for key in sorted(info_b):
            val = info_b[key]
            if isinstance(val, np.ndarray) and val.dtype.kind in "biuf":
                hashes["telemetry"].update(key.encode())
                _digest(hashes["telemetry"], val)
    return {k: h.hexdigest()[:16] for k, h in hashes.items()}


def fingerprint(steps: int) -> dict[str, Any]:
    from robot_rl.sim import task_names

    out: dict[str, Any] = {}
    for task in task_names():
        for backend in ("mujoco", "pybullet"):
            for safety in (False, True):
                key = f"env/{task}/{backend}/{'safety' if safety else 'nosafety'}"
                out[key] = env_fingerprint(task, backend, safety, steps)
                print(key, out[key], file=sys.stderr, flush=True)
        chain = chain_fingerprint(task, steps)
        if chain is not None:
            out[f"chain/{task}"] = chain
            print(f"chain/{task}", chain, file=sys.stderr, flush=True)
    return out


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--out", help="write the fingerprint here")
    p.add_argument("--compare", help="a fingerprint written earlier: report every difference, exit 1 on any")
    args = p.parse_args()
    fp = fingerprint(args.steps)
    if args.out:
        with open(args.out, "w") as f:
            json.dump(fp, f, indent=1, sort_keys=True)
    result: dict[str, Any] = {"entries": len(fp)}
    if args.compare:
        with open(args.compare) as f:
            ref = json.load(f)
        diff = {k: {f: (ref[k].get(f), v.get(f)) for f in v if ref[k].get(f) != v.get(f)}
                for k, v in fp.items() if k in ref}
        diff = {k: v for k, v in diff.items() if v}
        missing = sorted(set(ref) - set(fp))
        added = sorted(set(fp) - set(ref))  # tasks registered after the reference: nothing to compare them with
        result.update(differences=diff, missing=missing, added=added, identical=not diff and not missing)
    print(json.dumps(result))
    if args.compare and not result["identical"]:
        sys.exit(1)


if __name__ == "__main__":
    main()
