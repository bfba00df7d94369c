"""Closed loop: a simulated "real" A1 with hidden perturbed parameters runs a bundle while recording; then
(1) system identification recovers the hidden parameters, (2) offline and online fine-tuning from the logs improve
the return on that robot, with the safety chain in the loop.

    nice -n 10 python benchmarks/closed_loop_replay.py --bundle BUNDLE --out /tmp/closed_loop [--transport ros]

--transport direct (default) drives the simulated robot (make_robot_sim) through the same contract path as the
policy node (observer -> bundle -> contract.act -> safety chain -> held targets) and records ControlTick bags with the
rosbags writer; --transport ros starts the simulated-robot, policy, cmd_vel and recorder nodes over ROS 2 (isolated
DDS domain) and records with the robot_rl recorder; the simulated robot publishes its ground-truth pose at the
physics rate (motion capture). Both add --noise exploration to the deployed actions before the safety chain (over
ROS 2 the policy node's `exploration_std`). System identification uses the logged tick timing and a bootstrap over
segments; online fine-tuning (--methods online_iql / online_ppo / offline_iql_ppo) runs in simulation randomized
around the *identified* parameters (the ranges robot-rl sysid writes; --train-point: at the fitted point), with
robot-rl finetune's intervention penalty, evaluation on the hidden ones. --reuse skips recording (and sysid, and the
original bundle's evaluation) when OUT holds them. Prints one JSON object on its last line.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

HIDDEN = {"friction": 0.6, "motor_strength": 0.8, "added_mass": 1.5, "latency": 3}
GROUND_TRUTH = "/sim_robot/ground_truth"


def pinned_overrides(params: dict[str, float], vx: float) -> list[str]:
    """Task overrides that make every simulated episode the hidden robot (no other randomization, fixed command)."""
    out = [f"commands.vx=[{vx}, {vx}]", "commands.vy=[0.0, 0.0]", "commands.yaw_rate=[0.0, 0.0]"]
    for key in ("friction", "added_mass", "motor_strength"):
        v = params.get(key, {"friction": 1.0, "added_mass": 0.0, "motor_strength": 1.0}[key])
        out += [f"randomization.{key}.low={v}", f"randomization.{key}.high={v}"]
    lat = int(params.get("latency", 0))
    out += [f"randomization.latency_steps.low={lat}", f"randomization.latency_steps.high={lat}"]
    for key in ("com_offset", "joint_pos_noise", "joint_vel_noise", "ang_vel_noise", "quat_noise",
                "joint_pos_bias", "ang_vel_bias"):
        out += [f"randomization.{key}.low=0.0", f"randomization.{key}.high=0.0"]
    for key in ("kp_scale", "kd_scale"):
        out += [f"randomization.{key}.low=1.0", f"randomization.{key}.high=1.0"]
    out += ["randomization.push_velocity.when=never"]
    return out


def record_direct(bundle_dir: Path, bag: Path, seconds: float, noise: float, vx: float, seed: int,
                  hidden: dict[str, float]) -> None:
    from robot_rl.bundle import load_bundle
    from robot_rl.logs import simulate_ticks, write_tick_bag

    bundle = load_bundle(bundle_dir)
    rng = np.random.default_rng(seed)
    ticks = int(seconds * bundle.contract.policy_rate_hz)
    act_dim = bundle.contract.act_dim
    log = simulate_ticks(bundle.contract, lambda o: bundle.act(o) + noise * rng.standard_normal(act_dim), ticks,
                         params=hidden, command=np.array([vx, 0.0, 0.0]), reset_every=500, seed=seed)
    write_tick_bag(bag, log, bundle.contract)


def record_ros(bundle_dir: Path, bag: Path, seconds: float, vx: float, hidden: dict[str, float], noise: float = 0.0,
               seed: int = 0) -> None:
    from robot_rl.bundle import load_bundle
    from robot_rl.ros_nodes.procs import NodeGroup
    from robot_rl.ros_nodes.recorder import DEFAULT_TOPICS

    contract = load_bundle(bundle_dir).contract
    (bag.parent / "logs").mkdir(parents=True, exist_ok=True)
    group = NodeGroup(None, bag.parent / "logs")
    try:
        group.start("recorder", "recorder", {"output": str(bag), "topics": DEFAULT_TOPICS + [GROUND_TRUTH]})
        group.start("sim_robot", "sim_robot_node", {
            "robot": contract.robot, "backend": "mujoco", "params": json.dumps(hidden),
            "command_joints": list(contract.joint_names), "command_rate_hz": float(contract.policy_rate_hz),
            "physics_rate_hz": float(contract.physics_rate_hz), "kp": float(contract.kp[0]),
            "kd": float(contract.kd[0]), "ground_truth_rate_hz": float(contract.physics_rate_hz)})
        group.start("policy", "policy_node", {"bundle": str(bundle_dir.resolve()), "autostart": True,
                                              "exploration_std": float(noise), "exploration_seed": int(seed)})
        group.start("cmd_vel", "cmd_vel_publisher", {"vx": vx, "vy": 0.0, "wz": 0.0})
        time.sleep(seconds)
    finally:
        group.stop_all()


def evaluate(bundle_dir: Path, overrides: list[str], episodes: int, seed: int) -> dict[str, float]:
    from robot_rl.networks import Policy
    from robot_rl.offline.loop import evaluate_policy
    from robot_rl.sim import make_vec_env

    policy, contract = Policy.from_bundle(bundle_dir)
    env = make_vec_env(str(contract.provenance.get("task", "a1_walk")), episodes, seed, overrides=overrides,
                       safety=True)
    try:
        return evaluate_policy(policy, env, episodes, seed=seed)
    finally:
        env.close()


def transport_delay(ds: Any) -> dict[str, float]:
    """Median and 90th percentile [ms] of (tick stamp + compute time - state stamp): how old the measured state was
    when its command left the policy node (state age + observation + inference + safety chain), on the shared clock;
    sysid replays this per tick (robot_rl.sysid, `timing`)."""
    delays = [np.asarray(ep.infos["stamp"]) + np.asarray(ep.infos["compute_time"]) - np.asarray(ep.infos["state_stamp"])
              for ep in ds.episodes if {"stamp", "compute_time", "state_stamp"} <= set(ep.infos)]
    if not delays:
        return {}
    d = np.concatenate(delays) * 1e3
    return {"median_ms": float(np.median(d)), "p90_ms": float(np.percentile(d, 90))}


def finetune_one(name: str, args: argparse.Namespace, ds_path: Path, train_overrides: list[str]) -> Path:
    from robot_rl.offline.finetune import FinetuneConfig, finetune

    out = args.out / name
    common = {"bundle": str(args.bundle), "data": str(ds_path), "out": str(out), "num_envs": args.num_envs,
              "task_overrides": train_overrides, "seed": args.seed, "init_std": args.init_std}
    common["actions"] = args.offline_actions
    if name == "offline_iql":
        cfg = FinetuneConfig(**common, algo="iql", offline_steps=args.offline_steps)
    elif name == "online_iql":  # IQL offline, then online with the logs in an RLPD buffer
        cfg = FinetuneConfig(**common, algo="iql", offline_steps=args.offline_steps, online=True,
                             online_steps=args.online_steps, critic_warmup_steps=1000)
    elif name == "online_ppo":  # PPO from the original actor, in simulation at the identified parameters
        cfg = FinetuneConfig(**common, algo="iql", offline_steps=0, online=True, online_algo="ppo",
                             online_steps=args.online_steps)
    elif name == "offline_iql_ppo":  # IQL offline, then PPO in simulation at the identified parameters
        cfg = FinetuneConfig(**common, algo="iql", offline_steps=args.offline_steps, online=True, online_algo="ppo",
                             online_steps=args.online_steps)
    else:
        raise SystemExit(f"unknown method {name}")
    finetune(cfg, log=lambda line: print(f"[{name}] {line}", flush=True))
    return out


METHODS = ("offline_iql", "online_iql", "online_ppo", "offline_iql_ppo")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bundle", type=Path, required=True)
    parser.add_argument("--out", type=Path, default=Path("/tmp/closed_loop"))
    parser.add_argument("--transport", choices=["direct", "ros"], default="direct")
    parser.add_argument("--hidden", type=json.loads, default=None,
                        help=f"hidden parameters of the simulated robot as JSON (default {json.dumps(HIDDEN)})")
    parser.add_argument("--seconds", type=float, default=40.0, help="logged robot time")
    parser.add_argument("--noise", type=float, default=0.1,
                        help="exploration noise (std, action units) on the deployed actions, before the safety chain "
                             "(ros: the policy node's exploration_std); 0: the deterministic policy")
    parser.add_argument("--vx", type=float, default=0.5)
    parser.add_argument("--reuse", action="store_true",
                        help="reuse OUT/dataset (and OUT/sysid.json) from an earlier run instead of recording")
    parser.add_argument("--methods", nargs="+", default=["offline_iql", "online_iql"], choices=METHODS)
    parser.add_argument("--offline-steps", type=int, default=3000)
    parser.add_argument("--offline-actions", choices=["applied", "policy"], default="policy",
                        help="logged actions the offline learners fit (robot-rl finetune --actions)")
    parser.add_argument("--online-steps", type=int, default=10_000)
    parser.add_argument("--num-envs", type=int, default=8, help="simulated robots for online fine-tuning")
    parser.add_argument("--train-set", nargs="+", default=[], metavar="KEY=VALUE",
                        help="extra task overrides for online fine-tuning only, e.g. rewards.safety_intervened=-1.0 "
                             "(the intervention penalty; robot-rl finetune's default 1.0)")
    parser.add_argument("--train-point", action="store_true",
                        help="fine-tune online at the fitted point instead of over the randomization ranges centred "
                             "on the fit (robot-rl sysid's training config: +-max(2 std, 10%%), added mass "
                             "+-max(2 std, 0.5 kg))")
    parser.add_argument("--init-std", type=float, default=0.15, help="initial exploration std of the learner")
    parser.add_argument("--eval-episodes", type=int, default=8)
    parser.add_argument("--horizon", type=int, default=8, help="sysid prediction horizon [control ticks]")
    parser.add_argument("--segments", type=int, default=160, help="sysid start states")
    parser.add_argument("--bootstrap", type=int, default=8, help="sysid bootstrap resamples")
    parser.add_argument("--no-finetune", action="store_true", help="stop after system identification")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(1)
    from robot_rl.dataset import load_dataset
    from robot_rl.replay import TopicMapping, replay
    from robot_rl.sysid import SysIdConfig, identify

    hidden = dict(args.hidden or HIDDEN)
    args.bundle = args.bundle.resolve()
    result: dict[str, Any] = {"transport": args.transport, "bundle": str(args.bundle), "hidden": hidden}
    t0 = time.monotonic()
    bag, ds_path = args.out / "bag", args.out / "dataset"
    if not args.reuse:
        shutil.rmtree(args.out, ignore_errors=True)
        args.out.mkdir(parents=True)
        if args.transport == "ros":
            record_ros(args.bundle, bag, args.seconds, args.vx, hidden, args.noise, args.seed)
        else:
            record_direct(args.bundle, bag, args.seconds, args.noise, args.vx, args.seed, hidden)
        result["seconds"], result["record_s"] = args.seconds, round(time.monotonic() - t0, 1)
        _, summary = replay([bag], ds_path, mapping=TopicMapping(ground_truth=GROUND_TRUTH), recover=True)
        result["dataset"] = {k: summary[k] for k in ("ticks", "episodes", "transitions", "end_reasons")}
        (args.out / "dataset.json").write_text(json.dumps(result["dataset"]))
    else:
        result["dataset"] = json.loads((args.out / "dataset.json").read_text())
    ds = load_dataset(ds_path)
    if args.transport == "ros":
        result["transport_delay"] = transport_delay(ds)
    sysid_file = args.out / "sysid.json"
    if args.reuse and sysid_file.is_file():
        result["sysid"] = json.loads(sysid_file.read_text())
    else:
        t1 = time.monotonic()
        fit = identify(ds, ds.contract.robot, SysIdConfig(horizon=args.horizon, max_segments=args.segments,
                                                         max_latency=8, bootstrap=args.bootstrap, seed=args.seed))
        result["sysid"] = {**fit.as_dict(), "seconds": round(time.monotonic() - t1, 1),
                           "relative_error": {k: abs(fit.values[k] - v) / max(abs(v), 1e-9)
                                              for k, v in hidden.items() if k in fit.values}}
        result["sysid"]["all_within_15pct"] = all(e <= 0.15 for e in result["sysid"]["relative_error"].values())
        sysid_file.write_text(json.dumps(result["sysid"]))
    print(json.dumps({"sysid": result["sysid"]["values"], "std": result["sysid"]["std"],
                      "error": result["sysid"]["relative_error"]}), flush=True)
    if args.no_finetune:
        result["total_s"] = round(time.monotonic() - t0, 1)
        print(json.dumps(result))
        return
    # evaluation: the hidden robot; online fine-tuning: simulation around the identified parameters
    eval_overrides = pinned_overrides(hidden, args.vx)
    train_overrides = pinned_overrides(result["sysid"]["values"], args.vx)  # the rest of the randomization off
    if not args.train_point:
        from robot_rl.sysid import randomization_overrides

        train_overrides += randomization_overrides(result["sysid"]["values"], result["sysid"]["std"])
    train_overrides += list(args.train_set)
    result["train_overrides"] = train_overrides
    base_file = args.out / "original.json"
    if args.reuse and base_file.is_file():
        base = json.loads(base_file.read_text())
    else:
        base = evaluate(args.bundle, eval_overrides, args.eval_episodes, args.seed + 7)
        base_file.write_text(json.dumps(base))
    result["original"] = base
    print(json.dumps({"original": base}), flush=True)
    for name in args.methods:
        t2 = time.monotonic()
        out = finetune_one(name, args, ds_path, train_overrides)
        ev = evaluate(out, eval_overrides, args.eval_episodes, args.seed + 7)
        ev["train_s"] = round(time.monotonic() - t2, 1)
        ev["return_gain"] = (ev["return_mean"] - base["return_mean"]) / max(abs(base["return_mean"]), 1e-9)
        result[name] = ev
        print(json.dumps({name: ev}), flush=True)
    result["total_s"] = round(time.monotonic() - t0, 1)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
