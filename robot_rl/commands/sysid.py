"""`robot-rl sysid DATASET --robot a1 [--out rand.yaml]`: identify friction, motor strength, PD gain scale,
latency and added mass from a replayed log; print the values with uncertainty and write a training config whose
randomization ranges are centred on them (`robot-rl train --config rand.yaml`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("dataset", type=Path, help="dataset folder written by robot-rl replay")
    parser.add_argument("--robot", required=True, help="robot model to fit (must match the dataset)")
    parser.add_argument("--out", type=Path, help="training config YAML to write (default: DATASET/sysid.yaml)")
    parser.add_argument("--params", nargs="+", metavar="NAME",
                        help="parameters to fit (default: friction motor_strength added_mass latency; also "
                             "kp_scale, kd_scale)")
    parser.add_argument("--segments", type=int, default=160, help="logged start states used")
    parser.add_argument("--horizon", type=int, default=8, help="control ticks predicted from each start state")
    parser.add_argument("--max-latency", type=int, default=6, help="largest latency profiled [physics steps]")
    parser.add_argument("--evals", type=int, default=400, help="CMA-ES evaluations at the best latency")
    parser.add_argument("--bootstrap", type=int, default=8,
                        help="bootstrap resamples of the segments for the uncertainty (0: Gauss-Newton only)")
    parser.add_argument("--bootstrap-evals", type=int, default=60, help="CMA-ES evaluations per bootstrap refit")
    parser.add_argument("--subsets", type=int, default=1,
                        help="fit this many disjoint sets of --segments start states; report their mean and spread "
                             "(each fit takes the full time)")
    parser.add_argument("--observables", nargs="+", metavar="NAME",
                        help="predicted quantities compared with the log (default: joint_pos joint_vel gyro "
                             "base_height base_vel joint_effort, those the dataset has; also base_pos, "
                             "accelerometer)")
    parser.add_argument("--trim", type=float, default=0.1,
                        help="fraction of worst-predicted segments left out of the cost (0: use all)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    from robot_rl.dataset import load_dataset
    from robot_rl.sysid import DEFAULT_PARAMS, SysIdConfig, identify, randomization_overrides, write_train_config

    cfg = SysIdConfig(params=tuple(args.params or DEFAULT_PARAMS), horizon=args.horizon, max_segments=args.segments,
                      max_latency=args.max_latency, max_evals=args.evals, bootstrap=args.bootstrap,
                      bootstrap_evals=args.bootstrap_evals, subsets=args.subsets, seed=args.seed, trim=args.trim,
                      observables=tuple(args.observables or SysIdConfig.observables))
    ds = load_dataset(args.dataset)
    ds.check_robot(args.robot)

    def progress(latency: int, cost: float, params: dict, subset: tuple[int, int] | None = None) -> None:
        where = f"subset {subset[0] + 1}/{subset[1]}, " if subset else ""
        print(f"robot-rl sysid: {where}latency {latency} physics steps: cost {cost:.4g}", flush=True)

    result = identify(ds, args.robot, cfg, progress=progress)
    task = str(ds.contract.provenance.get("task") or f"{args.robot}_walk")
    out = write_train_config(args.out or args.dataset / "sysid.yaml", result, task, str(args.dataset))
    for key, value in result.values.items():
        lo_hi = result.interval.get(key)
        label = "range over subsets and bootstrap" if result.subset_fits else "5-95%"
        band = f"  ({label}: {lo_hi[0]:.4g} .. {lo_hi[1]:.4g})" if lo_hi else ""
        print(f"robot-rl sysid: {key:15s} {value:8.4g} +- {result.std.get(key, 0.0):.3g}{band}")
    print(f"robot-rl sysid: prediction cost {result.cost:.4g} (nominal {result.nominal_cost:.4g}); wrote {out}")
    overrides = randomization_overrides(result.values, result.std)
    print(json.dumps({**result.as_dict(), "config": str(out), "overrides": overrides}))
    return 0
