"""Task registry: a robot folder under sim/robots registers its tasks next to itself; nothing central to edit.

`discover()` imports every package in robot_rl.sim.robots once; each calls `register_task` at import.
"""

from __future__ import annotations

import importlib
import pkgutil
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

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


Spec = TypeVar("Spec", TaskSpec, RobotSpec)


class _Registry(Generic[Spec]):
    """Specs by name, filled by the robot folders as they are imported (`discover`)."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.specs: dict[str, Spec] = {}

    def add(self, spec: Spec) -> None:
        self.specs[spec.name] = spec

    def names(self) -> list[str]:
        discover()
        return sorted(self.specs)

    def get(self, name: str) -> Spec:
        discover()
        if name not in self.specs:
            raise ConfigError(f"unknown {self.kind} '{name}' (choose from {', '.join(sorted(self.specs))})")
        return self.specs[name]


_TASKS: _Registry[TaskSpec] = _Registry("task")
_ROBOTS: _Registry[RobotSpec] = _Registry("robot")
_discovered = False


def register_task(spec: TaskSpec) -> None:
    _TASKS.add(spec)


def register_robot(spec: RobotSpec) -> None:
    _ROBOTS.add(spec)


def discover() -> None:
    global _discovered
    if _discovered:
        return
    import robot_rl.sim.robots as robots

    for info in pkgutil.iter_modules(robots.__path__):
        importlib.import_module(f"robot_rl.sim.robots.{info.name}")
    _discovered = True


def task_names() -> list[str]:
    return _TASKS.names()


def get_task(name: str) -> TaskSpec:
    return _TASKS.get(name)


def robot_names() -> list[str]:
    return _ROBOTS.names()


def get_robot(name: str) -> RobotSpec:
    return _ROBOTS.get(name)
