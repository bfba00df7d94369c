"""Task registry: a robot folder under sim/robots registers its tasks next to itself; nothing central to edit.

`discover()` imports every package in robot_rl.sim.robots once; each calls `register_task` at import.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from robot_rl.errors import ConfigError


@dataclass(frozen=True)
class TaskSpec:
    name: str
    """Registry key, e.g. a1_walk."""
    config_cls: type
    """Config dataclass; its defaults are the task's defaults."""
    make_task: Callable[[Any], Any]
    """Builds the task object (model, contract, rewards) from a resolved config."""
    robot: str
    """Robot the task drives (make_robot_sim uses the same model builder)."""
    gym_id: str | None = None
    """Gymnasium id of the single-environment adapter, e.g. robot_rl/A1Walk-v0."""
    train_defaults: dict[str, Any] = field(default_factory=dict)
    """TrainConfig fields this task trains with by default (`robot-rl train` puts the user's YAML and --set on top),
    e.g. num_envs, max_minutes, task_overrides, eval_overrides: measured settings live next to the task."""


@dataclass(frozen=True)
class RobotSpec:
    name: str
    make_robot: Callable[[], Any]
    """Returns a LeggedRobot-like description with `build_model(control_cfg)`."""


_TASKS: dict[str, TaskSpec] = {}
_ROBOTS: dict[str, RobotSpec] = {}
_discovered = False


def register_task(spec: TaskSpec) -> None:
    _TASKS[spec.name] = spec


def register_robot(spec: RobotSpec) -> None:
    _ROBOTS[spec.name] = spec


def discover() -> None:
    global _discovered
    if _discovered:
        return
    import robot_rl.sim.robots as robots

    for info in pkgutil.iter_modules(robots.__path__):
        importlib.import_module(f"robot_rl.sim.robots.{info.name}")
    _discovered = True


def task_names() -> list[str]:
    discover()
    return sorted(_TASKS)


def get_task(name: str) -> TaskSpec:
    discover()
    if name not in _TASKS:
        raise ConfigError(f"unknown task '{name}' (choose from {', '.join(sorted(_TASKS))})")
    return _TASKS[name]


def robot_names() -> list[str]:
    discover()
    return sorted(_ROBOTS)


def get_robot(name: str) -> RobotSpec:
    discover()
    if name not in _ROBOTS:
        raise ConfigError(f"unknown robot '{name}' (choose from {', '.join(sorted(_ROBOTS))})")
    return _ROBOTS[name]
