"""The one learner protocol, and the registry that finds algorithms by name.

Every algorithm (PPO, SAC, IQL, TD3+BC, BC; one file each) is driven the same way, by the training runner, by
fine-tuning and by the tests:

    learner = make_learner("sac", policy, SACConfig(), LearnerSetup(num_envs=16, action_clip=1.0))
    for _ in range(learner.rollout_steps):
        actions = learner.act(obs)                     # exploratory actions, recorded
        obs, rew, terminated, truncated, info = env.step(actions)
        learner.process_env_step(obs, rew, terminated, truncated, info)
    losses = learner.update()                          # dict of losses and statistics

`terminated` ends the return; `truncated` (time limit) only ends the episode and the learners bootstrap from
`info["final_obs"]` there. `learner.policy` is the actor: deterministic actions for evaluation, and what a bundle
exports (with its observation statistics). `state_dict()` holds plain tensors and numbers only (loadable with
`torch.load(weights_only=True)`). Offline training is the same `update()` on a learner built with logged data
(`LearnerSetup.offline`) and nothing collected.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

import numpy as np

from robot_rl.errors import ConfigError

if TYPE_CHECKING:
    from robot_rl.networks import Policy
    from robot_rl.offline.buffer import ReplayBuffer


@dataclass(frozen=True)
class LearnerSetup:
    """What a learner needs to know about where it runs (not hyperparameters: those are its config)."""

    num_envs: int = 1
    """Parallel environments that `act` and `process_env_step` see per call."""
    action_clip: float = 1.0
    """The contract's action clip: what the environment executes of an action."""
    seed: int = 0
    """Seeds the learner's own random draws (replay sampling, warm-up actions)."""
    offline: ReplayBuffer | None = None
    """Logged transitions to learn from (offline training; RLPD-style mixing online). On-policy learners refuse it."""


class Learner(Protocol):
    """What the runner and fine-tuning drive; see the module docstring for the loop."""

    policy: Policy
    """The actor (deterministic actions, export)."""

    @property
    def rollout_steps(self) -> int:
        """Environment steps to collect between two `update()` calls."""
        ...

    def act(self, obs: np.ndarray) -> np.ndarray:
        """Exploratory actions (N, act_dim) for raw observations (N, obs_dim); the learner records them."""
        ...

    def process_env_step(self, next_obs: np.ndarray, rewards: np.ndarray, terminated: np.ndarray,
                         truncated: np.ndarray, info: dict[str, Any]) -> None:
        """Record the environment's answer to the last `act`."""
        ...

    def update(self) -> dict[str, float]:
        """Learn from what was collected (and the logged data); returns losses and statistics."""
        ...

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


C = TypeVar("C")
C_contra = TypeVar("C_contra", contravariant=True)


class LearnerFactory(Protocol[C_contra]):
    """A learner class: built around an actor from its config and the setup."""

    def __call__(self, policy: Policy, cfg: C_contra, setup: LearnerSetup) -> Learner: ...


@dataclass(frozen=True)
class Algorithm(Generic[C]):
    """A registry entry: the algorithm's config class, the learner class it configures, and how that config
    builds the fresh actor a learner starts from when no bundle is given."""

    config: type[C]
    learner: LearnerFactory[C]
    new_policy: Callable[[C, int, int], Policy]


def actor_section_policy(cfg: Any, obs_dim: int, act_dim: int) -> Policy:
    """A fresh actor from the config's `actor` section (robot_rl.offline.offpolicy.ActorConfig)."""
    return cfg.actor.new_policy(obs_dim, act_dim)


def algorithms() -> dict[str, Algorithm[Any]]:
    """name -> Algorithm for every algorithm shipped (each in its own module)."""
    from robot_rl.offline.bc import BC, BCConfig
    from robot_rl.offline.iql import IQL, IQLConfig
    from robot_rl.offline.sac import SAC, SACConfig
    from robot_rl.offline.td3bc import TD3BC, TD3BCConfig
    from robot_rl.ppo import PPO, PPOConfig

    return {"ppo": Algorithm(PPOConfig, PPO, PPOConfig.new_policy),
            "sac": Algorithm(SACConfig, SAC, actor_section_policy),
            "iql": Algorithm(IQLConfig, IQL, actor_section_policy),
            "td3bc": Algorithm(TD3BCConfig, TD3BC, actor_section_policy),
            "bc": Algorithm(BCConfig, BC, actor_section_policy)}


def get_algorithm(name: str) -> Algorithm[Any]:
    found = algorithms()
    if name not in found:
        raise ConfigError(f"algo: unknown algorithm '{name}' (choose from {', '.join(found)})")
    return found[name]


def make_learner(name: str, policy: Policy, cfg: Any = None, setup: LearnerSetup | None = None) -> Learner:
    """The learner `name` around `policy`, configured by `cfg` (default: the algorithm's defaults)."""
    algo = get_algorithm(name)
    if cfg is None:
        cfg = algo.config()
    elif type(cfg) is not algo.config:
        raise ConfigError(f"{name} expects a {algo.config.__name__}, got {type(cfg).__name__}")
    return algo.learner(policy, cfg, setup or LearnerSetup())
