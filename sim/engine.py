"""Physics engines the environment core steps, chosen by backend name through a registry.

An engine integrates N worlds of one task for `decimation` physics steps per policy step and reports the result in
MuJoCo's full-physics state layout (mjSTATE_FULLPHYSICS rows: time, qpos, qvel, ...) with MuJoCo's sensordata layout,
so observations, rewards, randomization and safety are the same code on every engine. Per-world parameters are
described by each world's own MjModel (the randomization writes them there); an engine that keeps its own copy reads
them again for the worlds named in `set_params`.

`register_engine(name, factory)` makes `make_vec_env(..., backend=name)` use it: the MuJoCo engine registers here,
PyBullet in robot_rl.sim.pybullet_backend, and a GPU engine registers from its own module the same way.
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import mujoco
import numpy as np
from mujoco import rollout

from robot_rl.errors import ConfigError


class PhysicsEngine(Protocol):
    """N worlds stepped together; state and sensordata in MuJoCo's layout."""

    name: str
    """Backend name (what `make_vec_env(backend=...)` chose)."""

    def load(self, nominal: mujoco.MjModel, num_envs: int) -> list[mujoco.MjModel]:
        """One model copy per world, owned by the caller, who writes each world's parameters into its copy."""
        ...

    def set_params(self, idx: np.ndarray) -> None:
        """The models of worlds `idx` changed (randomization): read them before their next step."""
        ...

    def step(self, models: list[mujoco.MjModel], state: np.ndarray, ctrl: np.ndarray, out: np.ndarray,
             sensordata: np.ndarray) -> None:
        """Step every world from `state` (N, nstate) with per-physics-step controls `ctrl` (N, nstep, nu); write the
        state after each physics step into `out` (N, nstep, nstate) and the sensors into `sensordata`
        (N, nstep, nsensordata)."""
        ...

    def close(self) -> None:
        """Release the engine's resources (idempotent)."""
        ...


@dataclass(frozen=True)
class EngineRequest:
    """What an engine factory gets to build an engine for one environment."""

    model: mujoco.MjModel
    """The task's nominal model."""
    urdf: str
    """The URDF the model was built from (for engines that load robots themselves)."""
    num_envs: int
    num_threads: int


EngineFactory = Callable[[EngineRequest], PhysicsEngine]

_ENGINES: dict[str, EngineFactory] = {}


RobotSimFactory = Callable[..., Any]
"""(robot, params=None, **kwargs) -> a single simulated robot at physics rate (robot_rl.sim.robot_sim.SimRobot API)."""

_ROBOT_SIMS: dict[str, RobotSimFactory] = {}


def register_engine(name: str, factory: EngineFactory, robot_sim: RobotSimFactory | None = None) -> None:
    """Make `make_engine(name, ...)` (and `make_vec_env(backend=name)`) build engines with `factory`, and
    `make_robot_sim(..., backend=name)` build `robot_sim` when the engine has a single-robot simulator."""
    _ENGINES[name] = factory
    if robot_sim is not None:
        _ROBOT_SIMS[name] = robot_sim


def robot_sim_factory(name: str) -> RobotSimFactory:
    """The single-robot simulator of engine `name`; ConfigError naming the backend when there is none."""
    factory = _ROBOT_SIMS.get(name)
    if factory is None:
        raise ConfigError(f"unknown backend '{name}' (choose from {', '.join(sorted(_ROBOT_SIMS))})")
    return factory


def engine_names() -> list[str]:
    return sorted(_ENGINES)


def engine_factory(name: str) -> EngineFactory:
    """The registered engine factory `name`; ConfigError naming the backend when there is none."""
    factory = _ENGINES.get(name)
    if factory is None:
        raise ConfigError(f"unknown backend '{name}' (choose from {', '.join(engine_names())})")
    return factory


def make_engine(name: str, request: EngineRequest) -> PhysicsEngine:
    """The registered engine `name` built for `request` (engine_factory's ConfigError when there is none)."""
    return engine_factory(name)(request)


class MujocoEngine:
    """`mujoco.rollout` over the worlds' own models, in C threads with the GIL released."""

    name = "mujoco"

    def __init__(self, request: EngineRequest) -> None:
        threads = request.num_threads
        self._datas = [mujoco.MjData(request.model) for _ in range(threads)]
        self._rollout = rollout.Rollout(nthread=threads if threads > 1 else 0)

    def load(self, nominal: mujoco.MjModel, num_envs: int) -> list[mujoco.MjModel]:
        return [copy.copy(nominal) for _ in range(num_envs)]

    def set_params(self, idx: np.ndarray) -> None:
        """Nothing to do: rollout reads every world's model at each step."""

    def step(self, models: list[mujoco.MjModel], state: np.ndarray, ctrl: np.ndarray, out: np.ndarray,
             sensordata: np.ndarray) -> None:
        self._rollout.rollout(models, self._datas, state, ctrl, nstep=ctrl.shape[1], state=out,
                              sensordata=sensordata, skip_checks=True)

    def close(self) -> None:
        """Stop the rollout's thread pool (it would live as long as any reference to the engine)."""
        self._rollout.close()


def _mujoco_robot_sim(robot: str, params: dict[str, Any] | None = None, **kwargs: Any) -> Any:
    from robot_rl.sim.robot_sim import SimRobot

    return SimRobot(robot, params=params, **kwargs)


register_engine("mujoco", MujocoEngine, robot_sim=_mujoco_robot_sim)
