"""Training loop: a typed config, a run folder, iterations of any registered learner (`algo`: PPO by default, SAC,
...; robot_rl.learner) within a step and/or wall-clock budget, checkpoints (atomic, weights only), TensorBoard logs,
evaluation, a learning-curve PNG, a video and the exported bundle. An iteration is `learner.rollout_steps`
environment steps followed by one `learner.update()`.

run folder `runs/<task>-<timestamp>/`: config.yaml, tb/, checkpoints/model_<iteration>.pt, learning_curve.png,
video.mp4, eval.json, bundle/.
"""

from __future__ import annotations

import dataclasses
import json
import math
import re
import sys
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from robot_rl.atomic import write_file, write_text
from robot_rl.bundle import TASK_CONFIG_KEY, task_provenance
from robot_rl.config import from_dict, save_yaml, to_dict
from robot_rl.contract import PolicyContract
from robot_rl.errors import ConfigError, RobotRLError
from robot_rl.evaluation import evaluate
from robot_rl.gym_adapter import GYM_PREFIX, GymVecEnv
from robot_rl.learner import Learner, LearnerSetup, get_algorithm
from robot_rl.offline.bc import BCConfig
from robot_rl.offline.iql import IQLConfig
from robot_rl.offline.sac import SACConfig
from robot_rl.offline.td3bc import TD3BCConfig
from robot_rl.ppo import PPOConfig

CHECKPOINT_FORMAT = "robot_rl.checkpoint/2"
"""/2: the learner's state under "learner" (any registered algorithm); /1 held PPO's under "ppo"."""


class CheckpointError(RobotRLError):
    """A checkpoint is missing, corrupted or not a robot_rl checkpoint."""


@dataclass(frozen=True)
class TrainConfig:
    task: str = "a1_walk"
    """Task from robot_rl.sim.task_names(), or gym:<EnvId> for a Gymnasium environment (e.g. gym:HalfCheetah-v5)."""
    backend: Literal["mujoco", "pybullet"] = "mujoco"
    """Simulator backend for robot_rl tasks."""
    num_envs: int = 48
    """Parallel environments."""
    seed: int = 0
    """Seeds torch, the environments and evaluation."""
    max_env_steps: int = 0
    """Stop after this many environment steps (0: no step limit)."""
    max_minutes: float = 17.0
    """Stop after this much training wall-clock (0: no time limit); evaluation, video and export come after."""
    algo: str = "ppo"
    """Learning algorithm (robot_rl.learner.algorithms(): ppo, sac, iql, td3bc, bc); its section below configures
    it, the other sections are not used."""
    ppo: PPOConfig = field(default_factory=PPOConfig)
    """PPO (algo=ppo)."""
    sac: SACConfig = field(default_factory=SACConfig)
    """SAC (algo=sac)."""
    iql: IQLConfig = field(default_factory=IQLConfig)
    """IQL collecting its own data (algo=iql)."""
    td3bc: TD3BCConfig = field(default_factory=TD3BCConfig)
    """TD3+BC collecting its own data (algo=td3bc)."""
    bc: BCConfig = field(default_factory=BCConfig)
    """Behaviour cloning of its own collected actions (algo=bc; a smoke test of the protocol more than a method)."""
    task_overrides: list[str] = field(default_factory=list)
    """`key.sub=value` overrides of the task config (passed to make_vec_env); gym: tasks take none. `robot-rl train`
    starts from the task's registered train_defaults (a1_walk: walk straight at 0.5 m/s, two physics threads)."""
    eval_overrides: list[str] = field(default_factory=list)
    """Extra task overrides for evaluation, video and `robot-rl eval` (a1_walk default: straight at 0.5 m/s)."""
    safety: bool = False
    """Run the contract's safety chain in the training environments (see ppo.store_applied_action).
    Off by default because the a1_walk policy trained without it tracks the command better (docs/benchmarks.md,
    Training). The chain always runs in evaluation, deployment and fine-tuning."""
    eval_episodes: int = 10
    """Deterministic evaluation episodes after training (0: skip evaluation)."""
    video: bool = True
    """Record video.mp4 of the trained policy."""
    video_seconds: float = 8.0
    checkpoint_every: int = 100
    """Save a checkpoint every this many iterations (and always at the end)."""
    keep_checkpoints: int = 3
    """How many periodic checkpoints to keep."""
    runs_dir: str = "runs"
    """Parent folder of run folders."""

    def __post_init__(self) -> None:
        get_algorithm(self.algo)
        if self.num_envs < 1:
            raise ConfigError(f"num_envs must be >= 1, got {self.num_envs}")
        if self.max_env_steps < 0 or self.max_minutes < 0:
            raise ConfigError("max_env_steps and max_minutes must be non-negative")
        if self.max_env_steps == 0 and self.max_minutes == 0:
            raise ConfigError("set a budget: max_env_steps > 0 or max_minutes > 0")
        if self.task.startswith(GYM_PREFIX) and (self.task_overrides or self.eval_overrides):
            raise ConfigError("gym: tasks take no task_overrides/eval_overrides (set task_overrides=[] "
                              "eval_overrides=[])")
        if self.eval_episodes < 0 or self.checkpoint_every < 1 or self.keep_checkpoints < 1:
            raise ConfigError("eval_episodes must be >= 0, checkpoint_every and keep_checkpoints >= 1")

    def learner_config(self) -> Any:
        """The section of the chosen algorithm."""
        sections = {"ppo": self.ppo, "sac": self.sac, "iql": self.iql, "td3bc": self.td3bc, "bc": self.bc}
        return sections[self.algo]


def build_learner(cfg: TrainConfig, obs_dim: int, act_dim: int, action_clip: float) -> Learner:
    """A fresh learner of `cfg.algo` for an environment of these dimensions."""
    section = cfg.learner_config()
    algo = get_algorithm(cfg.algo)
    return algo.learner(algo.new_policy(section, obs_dim, act_dim), section,
                        LearnerSetup(num_envs=cfg.num_envs, action_clip=action_clip, seed=cfg.seed))


def task_defaults(task: str) -> TrainConfig:
    """TrainConfig defaults for `task`: the dataclass defaults under the task's registered train_defaults."""
    if task.startswith(GYM_PREFIX):
        return TrainConfig(task=task)
    from robot_rl.sim.registry import get_task

    try:
        return dataclasses.replace(TrainConfig(task=task), **get_task(task).train_defaults)
    except TypeError as exc:
        raise ConfigError(f"task {task}: invalid train_defaults ({exc})") from None


# ---- environments ----------------------------------------------------------------------------------------------
def make_env(task: str, num_envs: int, seed: int, backend: str = "mujoco", overrides: list[str] | None = None,
             render: bool = False, safety: bool = True) -> Any:
    """A VecEnv for a robot_rl task or, with the `gym:` prefix, for a Gymnasium environment."""
    if task.startswith(GYM_PREFIX):
        if overrides:
            raise ConfigError("task_overrides are not supported for gym: tasks")
        return GymVecEnv(task[len(GYM_PREFIX):], num_envs, seed, render=render)
    import robot_rl.sim as sim  # type: ignore[import-not-found,unused-ignore]

    names = sim.task_names()
    if task not in names:
        raise ConfigError(f"unknown task '{task}' (choose from {', '.join(names)} or gym:<EnvId>)")
    return sim.make_vec_env(task, num_envs, seed, backend=backend, overrides=list(overrides or []), safety=safety)


# ---- checkpoints -----------------------------------------------------------------------------------------------
def save_checkpoint(path: Path, payload: dict[str, Any]) -> Path:
    """torch.save to a temporary file, fsync, rename (robot_rl.atomic): an interrupted or failed save never leaves
    a corrupted or partial checkpoint, and the file is durable when this returns."""
    return write_file(path, lambda tmp: torch.save(payload, tmp))


def find_checkpoint(run_or_ckpt: str | Path) -> Path:
    """A checkpoint file, or the latest checkpoint of a run folder."""
    path = Path(run_or_ckpt)
    if path.is_file():
        return path
    for folder in (path / "checkpoints", path):
        if folder.is_dir():
            found = sorted(folder.glob("model_*.pt"), key=_iteration_of)
            if found:
                return found[-1]
    raise CheckpointError(f"no checkpoint found at {path}")


def _iteration_of(p: Path) -> int:
    m = re.search(r"model_(\d+)\.pt$", p.name)
    return int(m.group(1)) if m else -1


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Load with weights_only=True (never unpickles code); any damage is a one-line CheckpointError."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint not found: {path}") from None
    except Exception as exc:  # noqa: BLE001 - torch raises many types for truncated/garbled archives
        reason = str(exc).strip().splitlines()[0][:120] if str(exc).strip() else type(exc).__name__
        raise CheckpointError(f"{path}: corrupted or not a robot_rl checkpoint ({reason})") from None
    if isinstance(data, dict) and data.get("format") == "robot_rl.checkpoint/1":
        raise CheckpointError(f"{path}: an older checkpoint format (robot_rl.checkpoint/1, PPO only); this version "
                              f"reads {CHECKPOINT_FORMAT}: export its bundle with the version that wrote it")
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise CheckpointError(f"{path}: not a robot_rl checkpoint (format tag missing)")
    return data


def learner_from_checkpoint(data: dict[str, Any]) -> tuple[TrainConfig, PolicyContract, Learner]:
    """Rebuild the config, the contract and the learner stored in a checkpoint."""
    try:
        cfg = from_dict(TrainConfig, data["config"])
        contract = PolicyContract.from_dict(data["contract"])
        learner = build_learner(cfg, contract.obs_dim, contract.act_dim, contract.action.clip)
        learner.load_state_dict(data["learner"])
    except (KeyError, RuntimeError, ValueError, RobotRLError) as exc:
        raise CheckpointError(f"checkpoint does not match its config: {str(exc).splitlines()[0][:160]}") from None
    return cfg, contract, learner


# ---- export ------------------------------------------------------------------------------------------------------
def export_learner(out: str | Path, learner: Learner, contract: PolicyContract, provenance: dict[str, Any],
                   metrics: dict[str, Any]) -> Path:
    """Export a bundle: the learner's actor, the contract with its observation statistics and the provenance."""
    return learner.policy.export(out, contract, provenance, metrics)


# ---- runner ------------------------------------------------------------------------------------------------------
def new_run_dir(cfg: TrainConfig) -> Path:
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(cfg.runs_dir) / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', cfg.task)}-{stamp}"
    path, k = base, 1
    while path.exists():
        path, k = base.with_name(f"{base.name}-{k}"), k + 1
    path.mkdir(parents=True)
    return path


class Runner:
    """Owns the environment, the learner and the run folder."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, checkpoint: dict[str, Any] | None = None,
                 progress: bool = True) -> None:
        torch.set_num_threads(1)
        torch.manual_seed(cfg.seed)
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.progress = progress
        self.env = make_env(cfg.task, cfg.num_envs, cfg.seed, cfg.backend, cfg.task_overrides, safety=cfg.safety)
        try:
            self._start(checkpoint)
        except BaseException:
            self.env.close()  # a refused checkpoint (or any other failure here) leaves no environment running
            raise

    def _start(self, checkpoint: dict[str, Any] | None) -> None:
        """The learner, the state of a resumed run, the run folder and its config.yaml."""
        cfg = self.cfg
        self.contract: PolicyContract = self.env.contract
        self.learner = build_learner(cfg, self.env.obs_dim, self.env.act_dim, self.contract.action.clip)
        self.iteration = 0
        self.env_steps = 0
        self.wall_s = 0.0
        self.history: dict[str, list[float]] = {"wall_s": [], "env_steps": [], "return": []}
        self.last_checkpoint: Path | None = None
        """The newest checkpoint this runner saved."""
        self.bundle: Path | None = None
        """The bundle this runner exported (None until `export`)."""
        if checkpoint is not None:
            stored = PolicyContract.from_dict(checkpoint["contract"])
            if stored.obs_dim != self.contract.obs_dim or stored.act_dim != self.contract.act_dim:
                raise CheckpointError(f"checkpoint has obs/act dims {stored.obs_dim}/{stored.act_dim}, the task "
                                      f"{self.contract.obs_dim}/{self.contract.act_dim}")
            try:
                self.learner.load_state_dict(checkpoint["learner"])
            except (KeyError, RuntimeError, ValueError) as exc:
                raise CheckpointError(f"checkpoint does not fit the learner: {str(exc).splitlines()[0]}") from None
            self.iteration = int(checkpoint["iteration"])
            self.env_steps = int(checkpoint["env_steps"])
            self.wall_s = float(checkpoint["wall_s"])
            self.history = {k: list(v) for k, v in checkpoint["history"].items()}
            torch.set_rng_state(checkpoint["torch_rng"])
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_yaml(cfg, self.run_dir / "config.yaml")

    # ---- budget / checkpoint helpers --------------------------------------------------------------------------
    def _fraction_done(self) -> float:
        parts = []
        if self.cfg.max_env_steps > 0:
            parts.append(self.env_steps / self.cfg.max_env_steps)
        if self.cfg.max_minutes > 0:
            parts.append(self.wall_s / (60.0 * self.cfg.max_minutes))
        return max(parts)

    def checkpoint_payload(self) -> dict[str, Any]:
        return {"format": CHECKPOINT_FORMAT, "iteration": self.iteration, "env_steps": self.env_steps,
                "wall_s": self.wall_s, "learner": self.learner.state_dict(), "config": to_dict(self.cfg),
                "contract": self.contract.to_dict(), "history": self.history, "torch_rng": torch.get_rng_state()}

    def save(self) -> Path:
        """Checkpoint this iteration; older periodic checkpoints are pruned only once the new one is durable."""
        folder = self.run_dir / "checkpoints"
        path = save_checkpoint(folder / f"model_{self.iteration}.pt", self.checkpoint_payload())
        others = sorted((p for p in folder.glob("model_*.pt") if p != path), key=_iteration_of)
        for old in others[:max(0, len(others) - (self.cfg.keep_checkpoints - 1))]:  # never the one just written
            old.unlink(missing_ok=True)
        self.last_checkpoint = path
        return path

    def policy(self) -> Callable[[np.ndarray], np.ndarray]:
        """Deterministic actions of the learner's actor (evaluation, video)."""
        return self.learner.policy.act

    # ---- training --------------------------------------------------------------------------------------------
    def train(self, callback: Callable[[Runner, list[dict[str, Any]]], bool] | None = None) -> dict[str, Any]:
        """Iterations until the budget is spent (or `callback(runner, episodes_this_iteration)` returns False);
        returns the last logged scalars."""
        from torch.utils.tensorboard import SummaryWriter

        cfg, env, learner = self.cfg, self.env, self.learner
        writer = SummaryWriter(str(self.run_dir / "tb"), purge_step=self.env_steps + 1 if self.env_steps else None)
        recent: deque[float] = deque(maxlen=100)
        obs = np.array(env.reset(seed=cfg.seed + self.iteration), np.float32)
        rollout_steps = learner.rollout_steps
        batch = rollout_steps * cfg.num_envs
        scalars: dict[str, float] = {}
        bar = _Progress(self.progress, self._fraction_done())
        last_print = -math.inf  # plain log: the first iteration at once, then every 30 s
        try:
            while self._fraction_done() < 1.0:
                start = time.perf_counter()
                sums: dict[str, float] = {}
                episodes: list[dict[str, Any]] = []
                for _ in range(rollout_steps):
                    actions = learner.act(obs)
                    raw, rewards, terminated, truncated, info = env.step(actions)
                    obs = np.array(raw, np.float32)
                    learner.process_env_step(obs, rewards, terminated, truncated, info)
                    _accumulate(sums, "reward/total", rewards)
                    for name, value in info.get("reward_terms", {}).items():
                        _accumulate(sums, f"reward/{name}", value)
                    for name, value in info.get("safety", {}).items():
                        _accumulate(sums, f"safety/{name}", value)
                    sums["env/nan_resets"] = sums.get("env/nan_resets", 0.0) + float(info.get("nan_resets", 0))
                    episodes.extend(info.get("episodes", []))
                rollout_s = time.perf_counter() - start
                losses = learner.update()
                elapsed = time.perf_counter() - start
                self.iteration += 1
                self.env_steps += batch
                self.wall_s += elapsed
                recent.extend(float(ep["return"]) for ep in episodes if "return" in ep)
                scalars = {k: v / rollout_steps for k, v in sums.items() if k != "env/nan_resets"}
                scalars["env/nan_resets"] = sums.get("env/nan_resets", 0.0)
                scalars.update(losses)
                scalars.update(_episode_means(episodes))
                scalars["perf/steps_per_s"] = batch / elapsed
                scalars["perf/collection_steps_per_s"] = batch / max(rollout_s, 1e-9)
                scalars["perf/update_s"] = elapsed - rollout_s
                if recent:
                    scalars["episode/return_recent100"] = float(np.mean(recent))
                    self.history["wall_s"].append(self.wall_s)
                    self.history["env_steps"].append(float(self.env_steps))
                    self.history["return"].append(float(np.mean(recent)))
                for key, value in scalars.items():
                    writer.add_scalar(key, value, self.env_steps)
                writer.add_scalar("perf/wall_minutes", self.wall_s / 60.0, self.env_steps)
                if not all(math.isfinite(v) for v in losses.values()):
                    raise RobotRLError(f"training diverged at iteration {self.iteration} (non-finite loss)")
                desc = (f"it {self.iteration} | return {scalars.get('episode/return_recent100', float('nan')):.2f}"
                        f" | {scalars['perf/steps_per_s']:.0f} steps/s")
                bar.update(self._fraction_done(), desc)
                if not bar.live and time.monotonic() - last_print > 30.0:
                    last_print = time.monotonic()
                    print(f"[{self.wall_s / 60:5.1f} min, {self.env_steps} steps] {desc}", flush=True)
                if self.iteration % cfg.checkpoint_every == 0:
                    self.save()
                if callback is not None and callback(self, episodes) is False:
                    break
        finally:
            bar.close()
            writer.flush()
            writer.close()
        self.save()
        return scalars

    # ---- after training --------------------------------------------------------------------------------------
    def provenance(self) -> dict[str, Any]:
        task_cfg = self.env.cfg  # None for a Gymnasium task
        task: dict[str, Any] = task_provenance(self.cfg.task, task_cfg) if task_cfg is not None \
            else {"task": self.cfg.task, TASK_CONFIG_KEY: None}
        randomization = task[TASK_CONFIG_KEY].get("randomization") if task_cfg is not None else None
        return {**task, "backend": self.cfg.backend, "config": to_dict(self.cfg),
                "randomization": randomization, "env_steps": self.env_steps,
                "train_minutes": round(self.wall_s / 60.0, 3), "iterations": self.iteration}

    def finish(self) -> dict[str, Any]:
        """Evaluate, export the bundle, plot the learning curve and record the video; returns the eval summary."""
        from robot_rl.plots import plot_learning_curve

        cfg = self.cfg
        metrics: dict[str, Any] = {}
        if cfg.eval_episodes > 0:
            eval_env = make_env(cfg.task, cfg.eval_episodes, cfg.seed + 10_000, cfg.backend,
                                [*cfg.task_overrides, *cfg.eval_overrides], safety=cfg.safety)
            try:
                metrics = evaluate(self.policy(), eval_env, cfg.eval_episodes, cfg.seed + 10_000)
            finally:
                eval_env.close()
            write_text(self.run_dir / "eval.json", json.dumps(metrics, indent=2))
        self.export(metrics)
        if self.history["return"]:
            plot_learning_curve(self.history["wall_s"], self.history["env_steps"], self.history["return"],
                                self.run_dir / "learning_curve.png", title=cfg.task)
        if cfg.video:
            try:
                self.record_video(self.run_dir / "video.mp4")
            except Exception as exc:  # noqa: BLE001 - a missing renderer must not cost the trained run
                (self.run_dir / "video.mp4").unlink(missing_ok=True)
                print(f"robot-rl train: warning: no video ({type(exc).__name__}: {str(exc).splitlines()[0]})",
                      file=sys.stderr)
        return metrics

    def export(self, metrics: dict[str, Any]) -> Path:
        """Export the learner's actor as the run's bundle (`run_dir/bundle`) with these evaluation metrics."""
        self.bundle = export_learner(self.run_dir / "bundle", self.learner, self.contract, self.provenance(), metrics)
        return self.bundle

    def record_video(self, path: Path) -> Path:
        from robot_rl.video import record_video

        cfg = self.cfg
        env = make_env(cfg.task, 1, cfg.seed + 20_000, cfg.backend, [*cfg.task_overrides, *cfg.eval_overrides],
                       render=True, safety=cfg.safety)
        try:
            fps = float(getattr(env, "fps", None) or self.contract.policy_rate_hz)
            return record_video(env, self.policy(), path, cfg.video_seconds, fps, seed=cfg.seed + 20_000)
        finally:
            env.close()

    def close(self) -> None:
        self.env.close()


def _accumulate(sums: dict[str, float], key: str, value: Any) -> None:
    """Add the mean of a numeric (or boolean) array; other telemetry (names, nested dicts) is not a scalar."""
    arr = np.asarray(value) if isinstance(value, (np.ndarray, int, float, bool, np.number, list)) else None
    if arr is not None and arr.dtype.kind in "biuf" and arr.size:
        sums[key] = sums.get(key, 0.0) + float(arr.mean())


def _episode_means(episodes: list[dict[str, Any]]) -> dict[str, float]:
    out: dict[str, float] = {}
    keys = {k for ep in episodes for k, v in ep.items() if isinstance(v, (int, float, np.number, bool))}
    for key in keys:
        out[f"episode/{key}"] = float(np.mean([float(ep[key]) for ep in episodes if key in ep]))
    return out


class _Progress:
    """rich progress bar (reward, steps/s, ETA) on a terminal; plain periodic lines otherwise."""

    def __init__(self, enabled: bool, start: float) -> None:
        self.live = enabled and sys.stderr.isatty()
        self._bar: Any = None
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

            self._bar = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.percentage:>3.0f}%"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 console=Console(stderr=True))
            self._bar.start()
            self._task = self._bar.add_task("training", total=1000, completed=int(1000 * start))

    def update(self, fraction: float, description: str) -> None:
        if self._bar is not None:
            self._bar.update(self._task, completed=int(1000 * min(fraction, 1.0)), description=description)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.stop()
