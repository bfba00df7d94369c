"""`robot-rl finetune BUNDLE --data DATASET [--out NEW_BUNDLE] [--sim-config rand.yaml] [--config FILE.yaml]
[--set key=value ...]`.

Offline fine-tuning on a replayed dataset, optionally followed by online fine-tuning in simulation (the logged data
in the replay buffer, RLPD, or PPO) with the safety chain in the loop. Every setting is a
`robot_rl.offline.finetune.FinetuneConfig` field under its own name (`--set algo=td3bc offline_steps=300
learner.temperature=3 task_overrides=[commands.vx=0.5]`); the flags below are the same fields, as the docs use them.
The resolved config is saved in the new bundle (`finetune_config.yaml`); its contract provenance names the dataset
(path, Minari id, sha256) and the bundle it started from.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

from robot_rl.config import FieldFlag, add_config_arguments, config_from_args, save_yaml

# (flag, FinetuneConfig field, help, argparse extras): the short spellings the docs use
FIELD_FLAGS: list[FieldFlag] = [
    ("--data", "data", "dataset folder written by robot-rl replay", {}),
    ("--out", "out", "bundle to write (default: BUNDLE-<algo>[-online])", {}),
    ("--algo", "algo", "offline algorithm: iql, td3bc, bc or sac", {}),
    ("--steps", "offline_steps", "offline gradient steps", {}),
    ("--actions", "actions", "logged actions to learn from: policy or applied", {}),
    ("--learner", "learner.", "offline learner settings, e.g. temperature=10 anchor=1 (IQL)", {"nargs": "+"}),
    ("--online", "online", "then fine-tune online in simulation: the offline learner goes on (SAC after bc/sac) "
                           "with the logs in half of every batch", {"nargs": 0}),
    ("--online-steps", "online_steps", "online environment transitions", {}),
    ("--online-algo", "online_algo", "online learner: ppo (without the logs; default: continue the offline one)",
     {}),
    ("--utd", "utd_ratio", "online critic updates per transition", {}),
    ("--critic-warmup", "critic_warmup_steps", "critic updates on the logged data before online SAC", {}),
    ("--num-envs", "num_envs", "simulated robots for online fine-tuning and evaluation", {}),
    ("--intervention-penalty", "intervention_penalty", "reward per second taken away per intervention", {}),
    ("--online-episode-s", "online_episode_s", "cap on online episodes [s] (0: the task's)", {}),
    ("--eval-episodes", "eval_episodes", "evaluate before and after (0: skip)", {}),
]


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from robot_rl.offline.finetune import FinetuneConfig

    parser.add_argument("bundle", type=Path, help="bundle to start from")
    parser.add_argument("--sim-config", type=Path,
                        help="a robot-rl train --config YAML whose task and task overrides the online phase and the "
                             "evaluation use first, e.g. the randomization centred on the identified parameters that "
                             "robot-rl sysid --out wrote (task_overrides from --set come after them)")
    add_config_arguments(parser, FinetuneConfig, "algo=bc offline_steps=300", field_flags=FIELD_FLAGS)


def _sim_config(path: Path) -> tuple[str, list[str]]:
    """(task, task_overrides) of a robot-rl train config file."""
    import yaml

    from robot_rl.errors import ConfigError

    try:
        doc = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as exc:
        detail = " ".join(str(exc).split())  # YAML errors span several lines: the error stays one line
        raise ConfigError(f"--sim-config {path}: cannot read it ({detail})") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("task_overrides", []), list):
        raise ConfigError(f"--sim-config {path}: expected a robot-rl train config (task, task_overrides)")
    return str(doc.get("task") or ""), [str(o) for o in doc.get("task_overrides", [])]


def run(args: argparse.Namespace) -> int:
    from robot_rl.errors import ConfigError
    from robot_rl.offline.finetune import FinetuneConfig, finetune

    cfg = config_from_args(FinetuneConfig, args, base=FinetuneConfig(bundle=str(args.bundle), data="", out=""))
    if not cfg.data:
        raise ConfigError("data: no dataset given (--data DATASET or --set data=DATASET)")
    if not cfg.out:
        cfg = dataclasses.replace(cfg, out=str(args.bundle.with_name(
            f"{args.bundle.name}-{cfg.algo}{'-online' if cfg.online else ''}")))
    if args.sim_config is not None:
        task, overrides = _sim_config(args.sim_config)
        cfg = dataclasses.replace(cfg, task=cfg.task or task, task_overrides=overrides + list(cfg.task_overrides))
    metrics = finetune(cfg, log=lambda line: print(f"robot-rl {line}", flush=True))
    save_yaml(cfg, Path(cfg.out) / "finetune_config.yaml")
    print(f"robot-rl finetune: wrote {cfg.out}")
    print(json.dumps({"bundle": cfg.out, **metrics}))
    return 0
