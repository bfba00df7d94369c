"""`robot-rl sysid DATASET --robot a1 [--out rand.yaml] [--config FILE.yaml] [--set key=value ...]`: identify friction,
motor strength, PD gain scale, latency and added mass from a replayed log; print the values with uncertainty and
write a training config whose randomization ranges are centred on them (`robot-rl train --config rand.yaml`).

The fit's settings are `robot_rl.sysid.SysIdConfig` fields under their own names (`--set max_segments=80
horizon=4 params=[friction,added_mass]`; the flags below are the same fields, as the docs use them); the resolved
settings are saved beside the training config (`<out>.sysid_config.yaml`).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from robot_rl.config import FieldFlag, add_config_arguments, config_from_args, save_yaml

# (flag, SysIdConfig field, help, argparse extras): the short spellings the docs use
FIELD_FLAGS: list[FieldFlag] = [
    ("--params", "params", "parameters to fit (friction motor_strength added_mass latency kp_scale kd_scale)",
     {"nargs": "+"}),
    ("--segments", "max_segments", "logged start states used", {}),
    ("--horizon", "horizon", "control ticks predicted from each start state", {}),
    ("--max-latency", "max_latency", "largest latency profiled [physics steps]", {}),
    ("--evals", "max_evals", "CMA-ES evaluations at the best latencies", {}),
    ("--bootstrap", "bootstrap", "bootstrap resamples of the segments (0: Gauss-Newton only)", {}),
    ("--bootstrap-evals", "bootstrap_evals", "CMA-ES evaluations per bootstrap refit", {}),
    ("--subsets", "subsets", "disjoint sets of start states fitted; their mean and spread are reported", {}),
    ("--observables", "observables", "predicted quantities compared with the log", {"nargs": "+"}),
    ("--trim", "trim", "fraction of worst-predicted segments left out of the cost", {}),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_rl.sysid import SysIdConfig

    parser.add_argument("dataset", type=Path, help="dataset folder written by robot-rl replay")
    parser.add_argument("--robot", required=True, help="robot model to fit (must match the dataset)")
    parser.add_argument("--out", type=Path, help="training config YAML to write (default: DATASET/sysid.yaml)")
    add_config_arguments(parser, SysIdConfig, "max_segments=80 horizon=4", field_flags=FIELD_FLAGS)


def run(args: argparse.Namespace) -> int:
    from robot_rl.dataset import load_dataset
    from robot_rl.sysid import SysIdConfig, identify, randomization_overrides, write_train_config

    cfg = config_from_args(SysIdConfig, args)
    ds = load_dataset(args.dataset)
    ds.check_robot(args.robot)

    def progress(latency: int, cost: float, params: dict, subset: tuple[int, int] | None = None) -> None:
        where = f"subset {subset[0] + 1}/{subset[1]}, " if subset else ""
        print(f"robot-rl sysid: {where}latency {latency} physics steps: cost {cost:.4g}", flush=True)

    result = identify(ds, args.robot, cfg, progress=progress)
    task = str(ds.contract.provenance.get("task") or f"{args.robot}_walk")
    out = write_train_config(args.out or args.dataset / "sysid.yaml", result, task, str(args.dataset))
    resolved = out.with_name(f"{out.stem}.sysid_config.yaml")
    save_yaml(cfg, resolved)
    for key, value in result.values.items():
        lo_hi = result.interval.get(key)
        label = "range over subsets and bootstrap" if result.subset_fits else "5-95%"
        band = f"  ({label}: {lo_hi[0]:.4g} .. {lo_hi[1]:.4g})" if lo_hi else ""
        print(f"robot-rl sysid: {key:15s} {value:8.4g} +- {result.std.get(key, 0.0):.3g}{band}")
    print(f"robot-rl sysid: prediction cost {result.cost:.4g} (nominal {result.nominal_cost:.4g}); wrote {out} "
          f"(settings in {resolved})")
    overrides = randomization_overrides(result.values, result.std)
    print(json.dumps({**result.as_dict(), "config": str(out), "sysid_config": str(resolved), "overrides": overrides}))
    return 0
