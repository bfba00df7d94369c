"""`robot-rl replay BAG_OR_FOLDER... --out DATASET [--bundle B] [--config FILE.yaml] [--set key=value ...]`: rosbag2
logs (MCAP or SQLite3) -> offline-RL dataset + report.

robot_rl bags (recorded by the robot_rl recorder) carry their contract; raw-topic bags need `--bundle` (or a
contract.json) and the topic mapping (`ReplayConfig`: TopicMapping's fields at the top level, e.g. `--set
joint_states=/my/joint_states imu=/imu/data`). The resolved config is saved in the dataset (`replay_config.yaml`).
Nothing is written to --out on error; bags are opened read-only.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from dataclasses import dataclass
from pathlib import Path

from robot_rl.config import add_config_arguments, config_from_args, save_yaml
from robot_rl.replay import TopicMapping


@dataclass(frozen=True)
class ReplayConfig(TopicMapping):
    """What `robot-rl replay` reads and how: where a raw-topic bag keeps what the contract needs (the TopicMapping
    fields), and how logs are checked and cut into episodes."""

    recover: bool = False
    """Convert the readable part of damaged bags (the note names the damaged files) instead of refusing them."""
    gap_s: float = 0.2
    """Episodes split at time gaps longer than this [s]."""
    robot: str = ""
    """Refuse bags recorded on another robot (empty: any robot)."""

    def mapping(self) -> TopicMapping:
        return TopicMapping(**{f.name: getattr(self, f.name) for f in dataclasses.fields(TopicMapping)})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bags", nargs="+", metavar="BAG_OR_FOLDER",
                        help="rosbag2 folders (or .mcap files); a folder of bags is searched for them")
    parser.add_argument("--out", type=Path, required=True, help="dataset folder to write (must not exist)")
    parser.add_argument("--bundle", type=Path, help="bundle (or contract.json) whose contract the log follows")
    add_config_arguments(parser, ReplayConfig, "imu=/imu/data ground_truth=/mocap/pose",
                         config_flags=("--config", "--topics"), field_flags=[
                             ("--recover", "recover", "convert the readable part of damaged bags", {"nargs": 0}),
                             ("--gap", "gap_s", "split episodes at time gaps longer than this [s]", {}),
                             ("--robot", "robot", "refuse bags recorded on another robot", {})])


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
    from robot_rl.replay import contract_of, replay

    cfg = config_from_args(ReplayConfig, args)
    contract = contract_of(args.bundle) if args.bundle else None
    out, summary = replay(expand_bags(args.bags), args.out, contract=contract, mapping=cfg.mapping(),
                          recover=cfg.recover, gap_s=cfg.gap_s, robot=cfg.robot or None)
    save_yaml(cfg, out / "replay_config.yaml")
    report = json.loads((out / "report.json").read_text())
    print(f"robot-rl replay: wrote {out}: {summary['episodes']} episodes, {summary['transitions']} transitions "
          f"from {summary['ticks']} ticks; report {out / 'report.md'}")
    for bag, note in summary["recovered"].items():
        print(f"robot-rl replay: recovered {bag}: {note}")
    print(json.dumps({k: report[k] for k in ("episodes", "transitions", "return_mean", "return_std",
                                             "action_coverage_mean", "intervention_rate")}))
    return 0
