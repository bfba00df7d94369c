"""Our PPO against Stable-Baselines3 PPO on the same Gymnasium environment, same machine, one process each, seeded.

Both learners train for the same wall-clock budget, one after the other. The progress signal is the same for both:
the mean return of the last 10 finished training episodes; "time to threshold" is the first wall-clock second at which
it reaches --threshold. The final return is a deterministic evaluation (10 episodes, the same evaluation code).
SB3 uses the RL Zoo hyperparameters for HalfCheetah, its defaults otherwise, always with VecNormalize (as the Zoo does
for MuJoCo tasks). On robot_rl tasks ours trains on the native vectorized env, SB3 through `gymnasium.make`.

    nice python benchmarks/learning_vs_sb3.py --env HalfCheetah-v5 --minutes 10 --threshold 1500

The last line printed is one JSON object; --out also writes it, --plot draws both curves.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections import deque
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robot_rl.config import load_config
from robot_rl.evaluation import evaluate
from robot_rl.gym_adapter import GymVecEnv
from robot_rl.runner import Runner, TrainConfig

# RL Zoo (rl-baselines3-zoo, hyperparams/ppo.yml) for HalfCheetah-v4/v5
SB3_ZOO = {
    "HalfCheetah-v5": dict(batch_size=64, n_steps=512, gamma=0.98, learning_rate=2.0633e-05, ent_coef=0.000401762,
                           clip_range=0.1, n_epochs=20, gae_lambda=0.92, max_grad_norm=0.8, vf_coef=0.58096,
                           policy_kwargs=dict(log_std_init=-2, ortho_init=False, activation_fn=torch.nn.ReLU,
                                              net_arch=dict(pi=[256, 256], vf=[256, 256]))),
}
OURS = {
    "HalfCheetah-v5": ["num_envs=16", "ppo.num_steps=64", "ppo.num_epochs=5", "ppo.num_minibatches=4",
                       "ppo.init_noise_std=0.5", "ppo.entropy_coef=0.0", "ppo.learning_rate=0.0003"],
}


class Curve:
    """Mean of the last 10 training-episode returns against wall-clock and env steps; time to threshold."""

    def __init__(self, threshold: float) -> None:
        self.threshold = threshold
        self.window: deque[float] = deque(maxlen=10)
        self.points: list[tuple[float, int, float]] = []
        self.time_to_threshold: float | None = None
        self.steps_to_threshold: int | None = None

    def add(self, wall: float, steps: int, returns: list[float]) -> None:
        if not returns:
            return
        self.window.extend(returns)
        mean = float(np.mean(self.window))
        self.points.append((wall, steps, mean))
        if self.time_to_threshold is None and len(self.window) == self.window.maxlen and mean >= self.threshold:
            self.time_to_threshold, self.steps_to_threshold = wall, steps


# Gymnasium ids of robot_rl tasks: ours trains on the native vectorized env, SB3 on the Gymnasium registration,
# both on the same task config (the `make train` forward-walking commands) and both without the safety chain
# (SB3 cannot store the filtered action; the Gymnasium adapter runs unfiltered).
NATIVE = {"robot_rl/A1Walk-v0": "a1_walk"}
A1_TASK = ["commands.vx=[0.5, 0.5]", "commands.vy=[0.0, 0.0]", "commands.yaw_rate=[0.0, 0.0]"]
GYM_KWARGS: dict[str, dict[str, Any]] = {"robot_rl/A1Walk-v0": {"overrides": A1_TASK, "safety": False}}


def run_ours(env_id: str, minutes: float, seed: int, threshold: float, extra: list[str]) -> dict[str, Any]:
    if env_id in NATIVE:
        task = [f"task={NATIVE[env_id]}", "safety=false",
                "task_overrides=[" + ", ".join(f"'{o}'" for o in ["num_threads=2", *A1_TASK]) + "]"]
    else:
        task = [f"task=gym:{env_id}", "task_overrides=[]", "eval_overrides=[]"]
    overrides = [*task, f"seed={seed}", f"max_minutes={minutes}", "eval_episodes=0", "video=false",
                 "checkpoint_every=1000000", *OURS.get(env_id, []), *extra]
    cfg = load_config(TrainConfig, None, overrides)
    curve = Curve(threshold)
    run_dir = Path(os.environ.get("TMPDIR", "/tmp")) / f"bench-ours-{env_id}-{seed}-{os.getpid()}"
    runner = Runner(cfg, run_dir, progress=False)

    def on_iteration(r: Runner, episodes: list[dict[str, Any]]) -> bool:
        curve.add(r.wall_s, r.env_steps, [float(e["return"]) for e in episodes])
        return True

    runner.train(callback=on_iteration)
    runner.close()
    final = evaluate(runner.policy(), GymVecEnv(env_id, 10, seed + 10_000, **GYM_KWARGS.get(env_id, {})), 10,
                     seed + 10_000)
    return {"env_steps": runner.env_steps, "train_s": runner.wall_s, "final_return": final["return_mean"],
            "final_return_std": final["return_std"], "time_to_threshold_s": curve.time_to_threshold,
            "steps_to_threshold": curve.steps_to_threshold, "curve": curve.points, "config": overrides}


def run_sb3(env_id: str, minutes: float, seed: int, threshold: float) -> dict[str, Any]:
    import gymnasium as gym
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.monitor import Monitor
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    torch.set_num_threads(1)
    venv = VecNormalize(DummyVecEnv([lambda: Monitor(gym.make(env_id, **GYM_KWARGS.get(env_id, {})))]),
                        gamma=SB3_ZOO.get(env_id, {}).get("gamma", 0.99))
    venv.seed(seed)
    model = PPO("MlpPolicy", venv, seed=seed, device="cpu", verbose=0, **SB3_ZOO.get(env_id, {}))
    curve = Curve(threshold)
    start = time.perf_counter()
    budget = 60.0 * minutes

    class Stop(BaseCallback):
        def _on_step(self) -> bool:
            wall = time.perf_counter() - start
            curve.add(wall, self.num_timesteps, [float(i["episode"]["r"]) for i in self.locals["infos"]
                                                 if "episode" in i])
            return wall < budget

    model.learn(total_timesteps=10**9, callback=Stop())
    train_s = time.perf_counter() - start
    venv.training = False

    def policy(obs: np.ndarray) -> np.ndarray:
        action, _ = model.predict(venv.normalize_obs(obs), deterministic=True)
        return np.clip(action, -1.0, 1.0)  # GymVecEnv maps [-1, 1] onto the action bounds

    final = evaluate(policy, GymVecEnv(env_id, 10, seed + 10_000, **GYM_KWARGS.get(env_id, {})), 10, seed + 10_000)
    return {"env_steps": int(model.num_timesteps), "train_s": train_s, "final_return": final["return_mean"],
            "final_return_std": final["return_std"], "time_to_threshold_s": curve.time_to_threshold,
            "steps_to_threshold": curve.steps_to_threshold, "curve": curve.points, "config": SB3_ZOO.get(env_id, {})}


def plot(results: dict[str, Any], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
    for name, res in results.items():
        pts = np.array(res["curve"]) if res["curve"] else np.zeros((0, 3))
        axes[0].plot(pts[:, 0] / 60.0, pts[:, 2], label=name)
        axes[1].plot(pts[:, 1], pts[:, 2], label=name)
    axes[0].set_xlabel("wall-clock [min]")
    axes[1].set_xlabel("environment steps")
    axes[0].set_ylabel("mean return (last 10 episodes)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="HalfCheetah-v5", help="Gymnasium id (e.g. robot_rl/A1Walk-v0)")
    parser.add_argument("--minutes", type=float, default=10.0, help="wall-clock budget per learner")
    parser.add_argument("--threshold", type=float, default=1500.0, help="return threshold")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--which", default="ours,sb3", help="comma-separated learners to run")
    parser.add_argument("--set", dest="overrides", nargs="*", default=[], help="extra TrainConfig overrides (ours)")
    parser.add_argument("--out", type=Path, help="write the JSON result here")
    parser.add_argument("--plot", type=Path, help="write a PNG of both curves here")
    args = parser.parse_args()
    torch.set_num_threads(1)
    if args.env.startswith("robot_rl/"):
        import robot_rl.sim  # noqa: F401 - registers the robot_rl Gymnasium environments
    results: dict[str, Any] = {}
    for name in args.which.split(","):
        if name == "ours":
            results[name] = run_ours(args.env, args.minutes, args.seed, args.threshold, args.overrides)
        elif name == "sb3":
            results[name] = run_sb3(args.env, args.minutes, args.seed, args.threshold)
        else:
            raise SystemExit(f"unknown learner {name}")
        print(name, {k: v for k, v in results[name].items() if k not in ("curve", "config")}, flush=True)
    summary: dict[str, Any] = {"env": args.env, "minutes": args.minutes, "threshold": args.threshold,
                               "seed": args.seed}
    for name, res in results.items():
        for key in ("time_to_threshold_s", "steps_to_threshold", "final_return", "env_steps"):
            summary[f"{name}_{key}"] = res[key]
    if "ours" in results and "sb3" in results:
        t_ours, t_sb3 = results["ours"]["time_to_threshold_s"], results["sb3"]["time_to_threshold_s"]
        summary["speedup_to_threshold"] = (t_sb3 / t_ours) if t_ours and t_sb3 else None
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"summary": summary, "results": results}, indent=1, default=str))
    if args.plot:
        plot(results, args.plot, f"{args.env}: ours vs SB3 PPO (seed {args.seed})")
    print(json.dumps(summary))


if __name__ == "__main__":
    main()
