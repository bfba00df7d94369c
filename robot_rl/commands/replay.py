"""`robot-rl replay BAG_OR_FOLDER... --out DATASET`: rosbag2 logs (MCAP or SQLite3) -> offline-RL dataset + report.

robot_rl bags (recorded by the robot_rl recorder) carry their contract; raw-topic bags need `--bundle` (or
`--contract`) and a topic mapping (`--topics FILE.yaml` and/or `--set joint_states=/my/joint_states ...`).
Nothing is written to --out on error; bags are opened read-only.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", metavar="BAG_OR_FOLDER",
                        help="rosbag2 folders (or .mcap files); a folder of bags is searched for them")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write (must not exist)")
    parser.add_argument("--bundle", type=Path, help="bundle (or contract.json) whose contract the log follows")
    parser.add_argument("--topics", type=Path, help="YAML topic mapping for raw-topic bags (TopicMapping fields)")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="override topic-mapping fields, e.g. --set imu=/imu/data ground_truth=/mocap/pose")
    parser.add_argument("--recover", action="store_true", help="convert the readable part of truncated bags")
    parser.add_argument("--gap", type=float, default=0.2, help="split episodes at time gaps longer than this [s]")
    parser.add_argument("--robot", help="refuse bags recorded on another robot")


def expand_bags(paths: list[str]) -> list[Path]:
    """Bag folders as given; a folder that is not a bag but holds bags expands to them (sorted)."""
    from robot_rl.dataset import DatasetError

    out: list[Path] = []
    for raw in paths:
        p = Path(raw)
        if not p.exists():
            raise DatasetError(f"bag not found: {p}")
        if p.is_dir() and not (p / "metadata.yaml").is_file() and not any(p.glob("*.mcap")):
            inner = sorted(d for d in p.iterdir() if (d / "metadata.yaml").is_file())
            if not inner:
                raise DatasetError(f"{p}: neither a rosbag2 bag nor a folder of bags")
            out += inner
        else:
            out.append(p)
    return out


def run(args: argparse.Namespace) -> int:
    from robot_rl.replay import contract_of, load_mapping, replay

    contract = contract_of(args.bundle) if args.bundle else None
    mapping = load_mapping(args.topics, args.overrides)
    out, summary = replay(expand_bags(args.bags), args.out, contract=contract, mapping=mapping,
                          recover=args.recover, gap_s=args.gap, robot=args.robot)
    report = json.loads((out / "report.json").read_text())
    print(f"robot-rl replay: wrote {out}: {summary['episodes']} episodes, {summary['transitions']} transitions "
          f"from {summary['ticks']} ticks; report {out / 'report.md'}")
    for bag, note in summary["recovered"].items():
        print(f"robot-rl replay: recovered {bag}: {note}")
    print(json.dumps({k: report[k] for k in ("episodes", "transitions", "return_mean", "return_std",
                                             "action_coverage_mean", "intervention_rate")}))
    return 0
