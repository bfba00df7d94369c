"""Simulator backends, robot models, tasks, domain randomization and vectorized environments.

Entry points: `make_vec_env` (training), `make_robot_sim` (one robot at physics rate: ROS 2 simulated robot,
system identification), `task_names` / `task_config`; importing this package registers the Gymnasium ids
(e.g. `gymnasium.make("robot_rl/A1Walk-v0")`).
"""

from __future__ import annotations

import dataclasses
from typing import Any

from robot_rl.config import load_config
from robot_rl.errors import ConfigError
from robot_rl.sim import pybullet_backend  # noqa: F401 - registers the "pybullet" engine
from robot_rl.sim.engine import engine_factory, robot_sim_factory
from robot_rl.sim.registry import get_task, task_names

__all__ = ["make_vec_env", "make_robot_sim", "task_names", "task_config"]


def task_config(task: str) -> Any:
    """Default config dataclass instance of a registered task."""
    return get_task(task).config_cls()


def resolve_config(task: str, cfg: Any = None, overrides: list[str] | None = None) -> Any:
    """Task defaults (or `cfg`) with `key.sub=value` overrides applied, validated; never mutates `cfg`."""
    spec = get_task(task)
    if cfg is not None and not isinstance(cfg, spec.config_cls):
        if dataclasses.is_dataclass(cfg) or not isinstance(cfg, dict):
            raise ConfigError(f"task {task} expects a {spec.config_cls.__name__} config, got {type(cfg).__name__}")
        return load_config(spec.config_cls, None, _flatten(cfg) + list(overrides or []))
    if not overrides:
        return cfg if cfg is not None else spec.config_cls()
    return load_config(spec.config_cls, None, overrides, base=cfg)


def _flatten(tree: dict[str, Any], prefix: str = "") -> list[str]:
    import yaml

    out: list[str] = []
    for k, v in tree.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out += _flatten(v, key + ".")
        else:
            out.append(f"{key}={yaml.safe_dump(v, default_flow_style=True).strip().removesuffix('...').strip()}")
    return out


def make_vec_env(task: str, num_envs: int, seed: int, *, backend: str = "mujoco", cfg: Any = None,
                 overrides: list[str] | None = None, safety: bool = True) -> Any:
    """N environments of a registered task in one process on a registered physics engine (robot_rl.sim.env.VecEnv;
    docs/interfaces.md has the API)."""
    from robot_rl.sim.env import VecEnv

    engine_factory(backend)  # an unknown backend fails before the task's model is built
    if num_envs < 1:
        raise ConfigError(f"num_envs must be >= 1, got {num_envs}")
    task_obj = get_task(task).make_task(resolve_config(task, cfg, overrides))
    return VecEnv(task_obj, num_envs, seed, backend=backend, safety=safety)


def make_robot_sim(robot: str, backend: str = "mujoco", params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    """One simulated robot stepped at physics rate with held PD targets (see robot_rl.sim.robot_sim)."""
    return robot_sim_factory(backend)(robot, params=params, **kwargs)


def _register_gymnasium() -> None:
    from robot_rl.sim.gym_env import register_gym
    from robot_rl.sim.registry import get_task

    for name in task_names():
        register_gym(get_task(name))


_register_gymnasium()
