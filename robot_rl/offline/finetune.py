"""Fine-tune a policy bundle from logged data (offline) and optionally online in simulation, with the safety chain
in the loop, then export a new bundle whose provenance points to the data it learned from.

    result = finetune(FinetuneConfig(bundle="b", data="ds", algo="iql", online=True, out="b2"))

Offline: `algo` (bc, td3bc, iql, sac) trains the bundle's actor (its weights and observation statistics) on the
dataset. Online, in `make_vec_env(task, safety=True)`, with the logged transitions kept in the replay buffer and every
batch drawn half from them, half from fresh data (RLPD): IQL and TD3+BC go on with their own critics (IQL's
advantage-weighted actor is the stable choice); SAC (and BC, which has no critic) continue with SAC, whose critics
are first fitted on the logged data with the actor frozen. Online, the reward terms the dataset's rewards leave out
(what its log could not rebuild, robot_rl.dataset.reward_terms) get weight 0, so logged and fresh transitions share
one reward function.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch

from robot_rl.config import from_dict, to_dict
from robot_rl.dataset import load_dataset, reward_terms
from robot_rl.errors import ConfigError
from robot_rl.learner import Learner, LearnerSetup, algorithms, get_algorithm, make_learner
from robot_rl.networks import Policy
from robot_rl.offline.buffer import ReplayBuffer, Transitions
from robot_rl.offline.loop import evaluate_policy, run_online, train_offline
from robot_rl.offline.offpolicy import ActorConfig, ReplayConfig
from robot_rl.offline.sac import SAC, SACConfig
from robot_rl.ppo import PPO, PPOConfig

FINETUNE_PPO = dataclasses.replace(PPOConfig(), learning_rate=3e-4, desired_kl=0.005, entropy_coef=0.0,
                                   normalize_obs=False, critic_warmup=10)
"""PPO as fine-tuning runs it (online_algo="ppo"): the bundle's fixed observation statistics (its weights assume
them), half the training KL target and a slower start so the policy stays near the bundle's, and a critic fitted
for 10 iterations before the actor moves."""
FINETUNE_SAC = dataclasses.replace(SACConfig(), replay=ReplayConfig(warmup_steps=0),
                                   actor=ActorConfig(learning_rate=1e-4), droq=True, init_alpha=0.01)
"""SAC as fine-tuning runs it online: no random warm-up (it starts from a bundle), an actor slower than the critics
(early critic errors must not undo the policy), DroQ critics and a low start temperature."""


@dataclass(frozen=True)
class FinetuneConfig:
    bundle: str
    """Bundle to start from (its actor, statistics and contract)."""
    data: str
    """Dataset folder (robot-rl replay)."""
    out: str
    """Bundle folder to write."""
    algo: Literal["bc", "td3bc", "iql", "sac"] = "iql"
    """Offline algorithm."""
    offline_steps: int = 5000
    """Gradient steps on the logged data (0: skip the offline phase)."""
    batch_size: int = 256
    """Transitions per gradient step of the offline learner (and online of whichever learner runs but PPO)."""
    actions: Literal["applied", "policy"] = "policy"
    """Logged actions to learn from: the policy's output as the safety chain received it (default; a deployed actor's
    output goes through the chain again) or the executed (certified) ones (Dataset.transitions). Raw-topic logs
    have no policy output: there both are the executed actions."""
    learner: dict[str, Any] = field(default_factory=dict)
    """Overrides of the offline learner's config (e.g. {"temperature": 10.0, "anchor": 1.0} for IQL; sections as
    mappings, e.g. {"critic": {"reward_scale": 2.0}})."""
    online: bool = False
    """Then fine-tune online in simulation (the safety chain in the loop), with the learner `online_algo` says:
    by default the offline one goes on (IQL, TD3+BC; after BC or SAC a SAC), its batches drawn half from the logged
    data and half from fresh transitions (RLPD); with online_algo="ppo", PPO without the logs."""
    online_steps: int = 20_000
    """Environment transitions collected online."""
    online_algo: Literal["", "ppo"] = ""
    """Online learner: "" continues the offline one (IQL / TD3+BC with their critics; SAC after BC or SAC), with the
    logged data in its buffer (half of every batch, replay.offline_fraction); "ppo" runs on-policy PPO from the
    (offline-trained) actor (FINETUNE_PPO): the logs take no part online."""
    online_ppo: PPOConfig = field(default_factory=lambda: FINETUNE_PPO)
    """PPO online (online_algo="ppo"): iterations = online_steps // (num_envs * online_ppo.num_steps)."""
    online_sac: SACConfig = field(default_factory=lambda: FINETUNE_SAC)
    """SAC online after BC or SAC (its replay batch_size and utd_ratio are the fields below; its reward scale is
    1 / std of the logged per-step rewards)."""
    critic_warmup_steps: int = 2000
    """Critic updates on the logged data before online SAC (actor frozen)."""
    num_envs: int = 8
    """Parallel simulated robots for online fine-tuning and evaluation."""
    utd_ratio: float = 1.0
    """Critic updates per collected transition online (of whichever learner runs online but PPO)."""
    init_std: float = 0.15
    """Initial exploration std of the fine-tuned Gaussian policy."""
    task: str = ""
    """Simulation task for online fine-tuning and evaluation; empty: the bundle's provenance task."""
    task_overrides: list[str] = field(default_factory=list)
    """Task config overrides (e.g. pin randomization ranges to identified parameters)."""
    intervention_penalty: float = 1.0
    """Reward per second taken away on every policy step on which the safety chain changed the action: online the
    task's `rewards.safety_intervened` = -this (unless task_overrides set it), offline the same amount on every
    logged transition flagged `intervened` (logs without safety telemetry have no flags and lose nothing). The
    task's squared-correction term hardly sees the rate limiter's small clips, so without this count a fine-tuned
    bundle can intervene more often than the original (docs/replay.md)."""
    online_episode_s: float = 5.0
    """Online: episodes at most this long [s] (0: the task's own length). Short episodes train the start-up
    often, where a fine-tuned walking bundle is most likely to fall (docs/replay.md). Time limits are truncations:
    the learners bootstrap there."""
    eval_episodes: int = 0
    """Deterministic evaluation episodes of the start and the result (0: skip)."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.algo not in OFFLINE_ALGOS:
            raise ConfigError(f"algo: unknown algorithm '{self.algo}' (choose from {', '.join(OFFLINE_ALGOS)})")
        if self.online_algo not in ("", "ppo"):
            raise ConfigError(f"unknown online algorithm '{self.online_algo}' (choose from ppo, or empty)")
        if self.actions not in ("applied", "policy"):
            raise ConfigError(f"actions must be applied or policy, not '{self.actions}'")
        with_overrides(self.algo, get_algorithm(self.algo).config(), self.learner)
        if min(self.offline_steps, self.online_steps, self.critic_warmup_steps, self.eval_episodes) < 0:
            raise ConfigError("step counts must be non-negative")
        if self.intervention_penalty < 0 or self.online_episode_s < 0:
            raise ConfigError("intervention_penalty and online_episode_s must be non-negative")


def env_overrides(cfg: FinetuneConfig, task: str, trained: list[str]) -> list[str]:
    """Task overrides of the simulated robot: the ones the bundle was trained with (`trained`, its provenance's: the
    same commands and reward as in training, not the task's defaults), then online the intervention penalty and
    the episode cap, then the user's (`task_overrides`; the later wins)."""
    out = list(trained)
    if cfg.online:
        from robot_rl.sim import resolve_config

        out.append(f"rewards.safety_intervened={-cfg.intervention_penalty}")
        termination = getattr(resolve_config(task, None, out + list(cfg.task_overrides)), "termination", None)
        length = float(getattr(termination, "episode_length_s", 0.0))
        if cfg.online_episode_s and length > cfg.online_episode_s:
            out.append(f"termination.episode_length_s={cfg.online_episode_s}")
    return out + list(cfg.task_overrides)


def online_task_config(task: str, overrides: list[str], left_out: list[str], trained: Any = None) -> Any:
    """The online environment's task config: the task config the bundle was trained with (`trained`, from
    robot_rl.bundle.task_config_of; None: the task's defaults) with `overrides`, and weight 0 for every reward term
    the dataset's rewards leave out (robot_rl.dataset.reward_terms), so that the logged and the fresh transitions of
    one batch are scored by one reward function. Derived with dataclasses.replace; nothing is mutated."""
    from robot_rl.sim import resolve_config

    base = resolve_config(task, trained, overrides)
    if not left_out:
        return base
    try:
        rewards = dataclasses.replace(base.rewards, **{name: 0.0 for name in left_out})
    except (AttributeError, TypeError):
        raise ConfigError(f"task {task}: the dataset's rewards leave out {', '.join(left_out)}, which this task's "
                          "rewards config does not weight") from None
    return dataclasses.replace(base, rewards=rewards)


def _task_env(task: str, cfg: FinetuneConfig, overrides: list[str], contract: Any, left_out: list[str]) -> Any:
    from robot_rl.bundle import task_config_of
    from robot_rl.sim import make_vec_env

    found = task_config_of(contract)
    trained = found[1] if found is not None and found[0] == task else None
    env = make_vec_env(task, cfg.num_envs, cfg.seed, cfg=online_task_config(task, overrides, left_out, trained),
                       safety=True)
    if env.obs_dim != contract.obs_dim or env.act_dim != contract.act_dim:
        env.close()
        raise ConfigError(f"task {task} has obs/act dims {env.obs_dim}/{env.act_dim}, the bundle "
                          f"{contract.obs_dim}/{contract.act_dim}")
    return env


def penalize_interventions(data: Transitions, per_step: float) -> Transitions:
    """The logged transitions with `per_step` taken from the reward wherever the safety chain changed the action:
    the offline learners then optimize what online fine-tuning does (the task's `safety_intervened` term)."""
    if not per_step or not data.intervened.any():
        return data
    return dataclasses.replace(data, reward=(data.reward - per_step * data.intervened).astype(np.float32))


OFFLINE_ALGOS = tuple(name for name in algorithms() if name != "ppo")
"""Algorithms that learn from the logged data (PPO learns on-policy only: it is an online choice)."""
REWARD_SCALED = ("iql", "td3bc")
"""Offline learners whose rewards finetune scales to unit per-step std (see offline_learner_config)."""
CONTINUED_ONLINE = ("iql", "td3bc")
"""Offline learners that go on online with their own critics; SAC takes over after the others."""

def with_overrides(algo: str, base: Any, overrides: dict[str, Any]) -> Any:
    """`base` (an algorithm config) with the user's `overrides`; sections merge key by key. An unknown setting is
    a one-line ConfigError naming it."""
    tree = to_dict(base)
    unknown = sorted(set(overrides) - set(tree))
    if unknown:
        raise ConfigError(f"{algo} has no setting {unknown[0]} (settings: {', '.join(sorted(tree))})")
    for key, value in overrides.items():
        tree[key] = {**tree[key], **value} if isinstance(tree[key], dict) and isinstance(value, dict) else value
    return from_dict(type(base), tree, algo)


def offline_learner_config(algo: str, actions: str, overrides: dict[str, Any], data: Transitions,
                           batch_size: int = 256) -> Any:
    """The offline learner's config as finetune builds it from the logged data: its batch size, IQL's likelihood
    on the raw policy outputs, rewards scaled to unit per-step std (IQL, TD3+BC), then the user's `overrides`."""
    learner_cfg = get_algorithm(algo).config()
    learner_cfg = dataclasses.replace(learner_cfg, replay=dataclasses.replace(learner_cfg.replay,
                                                                              batch_size=batch_size))
    if algo == "iql" and actions == "policy":
        # IQL's likelihood: applied actions lie within the clip by construction; the policy's own (noisy) outputs
        # are exactly what its Gaussian sampled, beyond the clip too (a saturated actor that regresses onto
        # clipped copies of its outputs loses its margin and walks differently)
        learner_cfg = dataclasses.replace(learner_cfg, clip_logged_actions=False)
    if algo in REWARD_SCALED and "reward_scale" not in overrides.get("critic", {}):
        # advantages of order one for IQL's advantage weights; critic targets that are not near zero for TD3+BC's
        # lambda = alpha / mean|Q| (CriticConfig.reward_scale)
        scale = 1.0 / max(float(np.std(data.reward)), 1e-3)
        learner_cfg = dataclasses.replace(learner_cfg, critic=dataclasses.replace(learner_cfg.critic,
                                                                                  reward_scale=scale))
    return with_overrides(algo, learner_cfg, overrides)


def dataset_digest(path: Path) -> str:
    """sha256 of the dataset's episode file: the provenance of a fine-tuned bundle names exactly this data."""
    h = hashlib.sha256()
    with (path / "data" / "main_data.hdf5").open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def offline_learner(cfg: FinetuneConfig, policy: Policy, data: Transitions,
                    clip: float) -> tuple[Learner, LearnerSetup, Any]:
    """The learner of the offline phase (`cfg.algo` on `data`, configured by offline_learner_config), the setup that
    holds the logged data as its buffer, and the learner's config."""
    learner_cfg = offline_learner_config(cfg.algo, cfg.actions, cfg.learner, data, cfg.batch_size)
    # the online phase may continue this learner: its batches then mix the logged data with fresh data (RLPD)
    learner_cfg = dataclasses.replace(learner_cfg, replay=dataclasses.replace(learner_cfg.replay,
                                                                              utd_ratio=cfg.utd_ratio))
    setup = LearnerSetup(num_envs=cfg.num_envs, action_clip=clip, seed=cfg.seed,
                         offline=ReplayBuffer.from_transitions(data))
    return make_learner(cfg.algo, policy, learner_cfg, setup), setup, learner_cfg


def online_learner(cfg: FinetuneConfig, policy: Policy, data: Transitions, learner: Learner,
                   setup: LearnerSetup) -> tuple[Learner, int, dict[str, float]]:
    """The learner of the online phase, the environment transitions it collects, and its metrics:

    - online_algo "" after IQL or TD3+BC: `learner` itself goes on, its batches `replay.offline_fraction` logged
      data (setup.offline), the rest fresh;
    - online_algo "" after BC or SAC: a new SAC (`online_sac`) on the same actor and the same mixed batches, its
      critics first fitted on the logged data with the actor frozen (`critic_warmup_steps`);
    - online_algo "ppo": PPO (`online_ppo`) from the actor; the logs take no part.
    """
    clip = setup.action_clip
    if cfg.online_algo == "ppo":
        torch.manual_seed(cfg.seed)
        ppo = PPO(policy, cfg.online_ppo, LearnerSetup(num_envs=cfg.num_envs, action_clip=clip, seed=cfg.seed))
        batch = cfg.num_envs * cfg.online_ppo.num_steps
        return ppo, max(1, cfg.online_steps // batch) * batch, {}
    if cfg.algo in CONTINUED_ONLINE:
        return learner, cfg.online_steps, {}
    # SAC (or after BC): rewards scaled to unit per-step std, a low start temperature and a slow actor, critics
    # first fitted on the logged data with the actor frozen
    scale = 1.0 / max(float(np.std(data.reward)), 1e-3)
    sac_cfg = cfg.online_sac
    sac_cfg = dataclasses.replace(
        sac_cfg, replay=dataclasses.replace(sac_cfg.replay, batch_size=cfg.batch_size, utd_ratio=cfg.utd_ratio),
        critic=dataclasses.replace(sac_cfg.critic, reward_scale=scale))
    sac = SAC(policy, sac_cfg, setup)
    if cfg.critic_warmup_steps:
        sac.update_steps(cfg.critic_warmup_steps, actor=False)
    return sac, cfg.online_steps, {"online/reward_scale": scale}


def _learn(cfg: FinetuneConfig, policy: Policy, data: Transitions, clip: float, env: Any, eval_env: Any,
           log: Any) -> dict[str, Any]:
    """Evaluate the start (in `eval_env`, when given), learn offline, then online (in `env`, when given), evaluate
    the result; returns the metrics."""
    metrics: dict[str, Any] = {}
    if eval_env is not None:
        before = evaluate_policy(policy, eval_env, cfg.eval_episodes, seed=cfg.seed + 1000)
        metrics.update({f"before/{k}": v for k, v in before.items()})
        log(f"finetune: start policy return {before['return_mean']:.3f}, interventions/step "
            f"{before['intervention_rate']:.4f}")
    learner, setup, learner_cfg = offline_learner(cfg, policy, data, clip)
    if cfg.algo in REWARD_SCALED and "reward_scale" not in cfg.learner.get("critic", {}):
        metrics["offline/reward_scale"] = learner_cfg.critic.reward_scale
    torch.manual_seed(cfg.seed)
    if cfg.offline_steps:
        losses = train_offline(learner, cfg.offline_steps,
                               callback=lambda step, ls: log(f"finetune: {cfg.algo} step {step}: "
                                                             + ", ".join(f"{k} {v:.4g}" for k, v in ls.items())))
        metrics.update({f"offline/{k}": v for k, v in losses.items()})
    if cfg.online:
        assert env is not None
        online, steps, online_metrics = online_learner(cfg, policy, data, learner, setup)
        metrics.update(online_metrics)
        stats = run_online(online, env, steps, seed=cfg.seed,
                           callback=lambda n, s: log(f"finetune: online {n} transitions, return "
                                                     f"{s['return_mean']:.3f}"), log_every=max(1000, cfg.num_envs))
        metrics.update({f"online/{k}": v for k, v in stats.items()})
    if eval_env is not None:
        after = evaluate_policy(policy, eval_env, cfg.eval_episodes, seed=cfg.seed + 1000)
        metrics.update({f"after/{k}": v for k, v in after.items()})
        log(f"finetune: result return {after['return_mean']:.3f}, interventions/step {after['intervention_rate']:.4f}")
    return metrics


def finetune(cfg: FinetuneConfig, log: Any = print) -> dict[str, Any]:
    """Run the fine-tuning described by `cfg`; returns metrics (also stored in the new bundle)."""
    torch.set_num_threads(1)
    torch.manual_seed(cfg.seed)
    policy, contract = Policy.from_bundle(cfg.bundle, init_std=cfg.init_std)
    ds = load_dataset(cfg.data)
    ds.check_robot(contract.robot, contract)
    data = penalize_interventions(ds.transitions(cfg.actions), cfg.intervention_penalty / contract.policy_rate_hz)
    metrics: dict[str, Any] = {"dataset_transitions": len(data), "dataset_episodes": len(ds.episodes),
                               "dataset_intervention_rate": float(np.mean(data.intervened)) if len(data) else 0.0}
    if cfg.offline_steps and not len(data):
        raise ConfigError("the dataset has no transitions to learn from")
    start = time.monotonic()
    overrides: list[str] = []
    left_out = sorted(reward_terms(ds.metadata)[1]) if cfg.online else []
    task = cfg.task or str(contract.provenance.get("task", ""))
    with contextlib.ExitStack() as envs:  # every environment is closed however fine-tuning ends
        env = eval_env = None
        if cfg.online or cfg.eval_episodes:
            if not task:
                raise ConfigError("the bundle's provenance names no task: pass a simulation task (--task)")
            trained = [str(o) for o in contract.provenance.get("config", {}).get("task_overrides", [])] \
                if task == contract.provenance.get("task") else []
            overrides = env_overrides(cfg, task, trained)
            if cfg.online:
                env = envs.enter_context(contextlib.closing(_task_env(task, cfg, overrides, contract, left_out)))
            if cfg.eval_episodes:
                # evaluated on the task as the bundle was trained (plus the user's overrides), not in the online
                # training environment: its short episodes and intervention penalty are fine-tuning devices, and
                # returns measured there would not compare with the bundle's own evaluation
                eval_env = envs.enter_context(contextlib.closing(
                    _task_env(task, cfg, trained + list(cfg.task_overrides), contract, [])))
        metrics.update(_learn(cfg, policy, data, contract.action.clip, env, eval_env, log))
    metrics["finetune_minutes"] = round((time.monotonic() - start) / 60.0, 3)
    data_path = Path(cfg.data).resolve()
    provenance = {"finetune": {"from_bundle": str(Path(cfg.bundle).resolve()),
                               "from_git_commit": contract.provenance.get("git_commit"),
                               "dataset": str(data_path), "dataset_id": ds.metadata.get("dataset_id"),
                               "dataset_sha256": dataset_digest(data_path), "algo": cfg.algo,
                               "actions": cfg.actions, "learner": dict(cfg.learner),
                               "offline_steps": cfg.offline_steps,
                               "online_steps": cfg.online_steps if cfg.online else 0,
                               "online_algo": (cfg.online_algo or cfg.algo) if cfg.online else "",
                               "task": task, "task_overrides": list(cfg.task_overrides),
                               "env_overrides": overrides, "online_reward_left_out": left_out}}
    clean = {k: float(v) if isinstance(v, (np.floating, float)) else v for k, v in metrics.items()}
    policy.export(cfg.out, contract, provenance, clean)
    return clean
