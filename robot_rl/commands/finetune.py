"""`robot-rl finetune BUNDLE --data DATASET [--algo iql|td3bc|bc|sac] [--online] --out NEW_BUNDLE`.

Offline fine-tuning on a replayed dataset, optionally followed by online SAC in simulation with the logged data in
the replay buffer (RLPD) and the safety chain in the loop. The new bundle's contract provenance names the dataset
(path, Minari id, sha256) and the bundle it started from.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("bundle", type=Path, help="bundle to start from")
    parser.add_argument("--data", type=Path, required=True, help="dataset folder written by robot-rl replay")
    parser.add_argument("--out", type=Path, help="bundle to write (default: BUNDLE-<algo>)")
    parser.add_argument("--algo", choices=["iql", "td3bc", "bc", "sac"], default="iql", help="offline algorithm")
    parser.add_argument("--steps", type=int, default=5000, help="offline gradient steps")
    parser.add_argument("--actions", choices=["applied", "policy"], default="policy",
                        help="logged actions to learn from: the policy's output as the safety chain received it "
                             "(default) or the executed (certified) ones")
    parser.add_argument("--learner", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="offline learner settings, e.g. temperature=10 anchor=1 (IQL)")
    parser.add_argument("--online", action="store_true", help="then fine-tune online (SAC) in simulation")
    parser.add_argument("--online-steps", type=int, default=20_000, help="online environment transitions")
    parser.add_argument("--online-algo", choices=["ppo"], default="",
                        help="online learner (default: continue the offline one with the logs in an RLPD buffer)")
    parser.add_argument("--critic-warmup", type=int, default=2000,
                        help="critic updates on the logged data before online SAC (actor frozen)")
    parser.add_argument("--utd", type=float, default=1.0, help="online critic updates per transition")
    parser.add_argument("--num-envs", type=int, default=8, help="simulated robots for online fine-tuning / eval")
    parser.add_argument("--task", default="", help="simulation task (default: the bundle's)")
    parser.add_argument("--sim-config", type=Path,
                        help="a robot-rl train --config YAML whose task overrides the online phase uses, e.g. the "
                             "randomization centred on the identified parameters that robot-rl sysid --out wrote")
    parser.add_argument("--intervention-penalty", type=float, default=1.0,
                        help="reward per second taken away on each step the safety chain changes the action: "
                             "online in simulation, offline on the logged steps flagged as intervened (0: off)")
    parser.add_argument("--online-episode-s", type=float, default=5.0,
                        help="online: cap on the episode length [s], so that start-ups are trained often (0: the "
                             "task's)")
    parser.add_argument("--set", dest="overrides", action="extend", nargs="+", default=[], metavar="KEY=VALUE",
                        help="task config overrides for the online phase and evaluation")
    parser.add_argument("--eval-episodes", type=int, default=0, help="evaluate before and after (0: skip)")
    parser.add_argument("--seed", type=int, default=0)


def run(args: argparse.Namespace) -> int:
    import yaml

    from robot_rl.errors import ConfigError
    from robot_rl.offline.finetune import FinetuneConfig, finetune

    task, overrides = args.task, list(args.overrides)
    if args.sim_config is not None:
        try:
            doc = yaml.safe_load(args.sim_config.read_text())
        except (OSError, yaml.YAMLError) as exc:
            detail = " ".join(str(exc).split())  # YAML errors span several lines: the error stays one line
            raise ConfigError(f"--sim-config {args.sim_config}: cannot read it ({detail})") from None
        if not isinstance(doc, dict) or not isinstance(doc.get("task_overrides", []), list):
            raise ConfigError(f"--sim-config {args.sim_config}: expected a robot-rl train config "
                              "(task, task_overrides)")
        task = task or str(doc.get("task") or "")
        overrides = [str(o) for o in doc.get("task_overrides", [])] + overrides
    learner = {}
    for item in args.learner:
        key, sep, value = item.partition("=")
        if not sep:
            raise ConfigError(f"--learner {item}: expected KEY=VALUE")
        learner[key] = yaml.safe_load(value)
    out = args.out or args.bundle.with_name(f"{args.bundle.name}-{args.algo}{'-online' if args.online else ''}")
    cfg = FinetuneConfig(bundle=str(args.bundle), data=str(args.data), out=str(out), algo=args.algo,
                         offline_steps=args.steps, actions=args.actions, learner=learner, online=args.online,
                         online_steps=args.online_steps,
                         online_algo=args.online_algo, utd_ratio=args.utd,
                         critic_warmup_steps=args.critic_warmup, num_envs=args.num_envs,
                         task=task, task_overrides=overrides,
                         intervention_penalty=args.intervention_penalty,
                         online_episode_s=args.online_episode_s, eval_episodes=args.eval_episodes,
                         seed=args.seed)
    metrics = finetune(cfg, log=lambda line: print(f"robot-rl {line}", flush=True))
    print(f"robot-rl finetune: wrote {out}")
    print(json.dumps({"bundle": str(out), **metrics}))
    return 0
