"""How much exploration offline fine-tuning needs (docs/benchmarks.md, "Offline learning and exploration").

    # log the walking bundle on the hidden robot with exploration NOISE, then train an offline learner on it the way
    # robot-rl finetune does and evaluate on the hidden robot every --every updates
    python benchmarks/offline_exploration.py curve --out OUT --seconds 1200 --noise 0.7 --seed 3 --steps 10000
    # how far a fine-tuned bundle is from the original, and what its change is worth clipped per joint
    python benchmarks/offline_exploration.py probe --tuned FINETUNED_BUNDLE

Direct transport (benchmarks/closed_loop_replay.record_direct: the contract path and bag format without ROS 2, faster
than real time, 10 s episodes). Evaluation: benchmarks/closed_loop_replay.evaluate on the hidden robot.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from closed_loop_replay import GROUND_TRUTH, HIDDEN, pinned_overrides, record_direct  # noqa: E402

BUNDLE = Path(__file__).resolve().parents[1] / "tests" / "ros" / "data" / "a1_walk"


def curve(args: argparse.Namespace) -> None:
    import torch

    from robot_rl.dataset import load_dataset
    from robot_rl.learner import LearnerSetup, make_learner
    from robot_rl.networks import Policy
    from robot_rl.offline.buffer import ReplayBuffer
    from robot_rl.offline.finetune import offline_learner_config, penalize_interventions
    from robot_rl.offline.loop import evaluate_policy, train_offline
    from robot_rl.replay import TopicMapping, replay
    from robot_rl.sim import make_vec_env

    ds_path = args.out / "dataset"
    if not ds_path.exists():
        record_direct(args.bundle, args.out / "bag", args.seconds, args.noise, args.vx, args.seed, dict(HIDDEN))
        replay([args.out / "bag"], ds_path, mapping=TopicMapping(ground_truth=GROUND_TRUTH), recover=True)
    torch.manual_seed(args.learner_seed)
    policy, contract = Policy.from_bundle(args.bundle, init_std=0.15)
    data = penalize_interventions(load_dataset(ds_path).transitions("policy"),
                                  args.penalty / contract.policy_rate_hz)
    cfg = offline_learner_config(args.algo, "policy", json.loads(args.learner), data)
    setup = LearnerSetup(action_clip=contract.action.clip, seed=args.learner_seed,
                         offline=ReplayBuffer.from_transitions(data))
    learner = make_learner(args.algo, policy, cfg, setup)
    env = make_vec_env("a1_walk", args.episodes, args.eval_seed, overrides=pinned_overrides(HIDDEN, args.vx),
                       safety=True)
    base = evaluate_policy(Policy.from_bundle(args.bundle)[0], env, args.episodes, seed=args.eval_seed)
    print(json.dumps({"original": base}), flush=True)

    def report(step: int, losses: dict[str, float]) -> None:
        ev = evaluate_policy(policy, env, args.episodes, seed=args.eval_seed)
        ev["return_gain"] = ev["return_mean"] / base["return_mean"] - 1.0
        print(json.dumps({"updates": step, **ev, **losses}), flush=True)

    torch.manual_seed(args.learner_seed)
    train_offline(learner, args.steps, callback=report, log_every=args.every)
    env.close()


def probe(args: argparse.Namespace) -> None:
    from robot_rl.networks import Policy
    from robot_rl.offline.loop import evaluate_policy
    from robot_rl.sim import make_vec_env

    orig, _ = Policy.from_bundle(args.bundle)
    tuned, _ = Policy.from_bundle(args.tuned)
    overrides = pinned_overrides(HIDDEN, args.vx)
    env = make_vec_env("a1_walk", 16, 5, overrides=overrides, safety=True)
    obs, diffs = env.reset(seed=5), []
    for _ in range(400):  # on the states the tuned bundle visits
        a = tuned.act(obs)
        diffs.append(a - orig.act(obs))
        obs = env.step(a)[0]
    env.close()
    d = np.concatenate(diffs)
    print(json.dumps({"mean_action_distance": float(np.linalg.norm(d, axis=1).mean()),
                      "per_joint_mean_abs": np.abs(d).mean(0).astype(float).round(3).tolist()}), flush=True)

    class Clipped:
        def __init__(self, delta: float) -> None:
            self.delta = delta

        def act(self, obs_raw: np.ndarray) -> np.ndarray:
            a0 = orig.act(obs_raw)
            return a0 + np.clip(tuned.act(obs_raw) - a0, -self.delta, self.delta)

    for delta in (0.0, 0.1, 0.2, 0.3, 0.5, 10.0):
        env = make_vec_env("a1_walk", 16, 7, overrides=overrides, safety=True)
        print(json.dumps({"clip": delta, **evaluate_policy(Clipped(delta), env, 16, seed=7)}), flush=True)
        env.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    c = sub.add_parser("curve", help="record an exploratory log, then train offline and evaluate as it goes")
    c.add_argument("--out", type=Path, required=True,
                   help="folder for bag/ and dataset/ (an existing dataset is reused)")
    c.add_argument("--seconds", type=float, default=1200.0)
    c.add_argument("--noise", type=float, default=0.7, help="exploration std (action units) while logging")
    c.add_argument("--seed", type=int, default=3, help="recording seed")
    c.add_argument("--algo", choices=["iql", "td3bc", "bc"], default="iql")
    c.add_argument("--learner", default="{}", help="learner overrides as JSON, e.g. '{\"expectile\": 0.9}'")
    c.add_argument("--penalty", type=float, default=1.0, help="finetune --intervention-penalty")
    c.add_argument("--steps", type=int, default=10_000)
    c.add_argument("--every", type=int, default=2500)
    c.add_argument("--learner-seed", type=int, default=3)
    c.add_argument("--episodes", type=int, default=16)
    c.add_argument("--eval-seed", type=int, default=10)
    p = sub.add_parser("probe", help="distance of a fine-tuned bundle from the original, and its clipped change")
    p.add_argument("--tuned", type=Path, required=True)
    for s in (c, p):
        s.add_argument("--bundle", type=Path, default=BUNDLE)
        s.add_argument("--vx", type=float, default=0.5)
    args = parser.parse_args()
    os.environ.setdefault("MUJOCO_GL", "egl")
    import torch

    torch.set_num_threads(1)
    curve(args) if args.mode == "curve" else probe(args)


if __name__ == "__main__":
    main()
