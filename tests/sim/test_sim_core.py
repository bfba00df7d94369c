"""The environment core's plug-in points: the one weighted reward sum (hand-computed), and a physics engine
registered by name and chosen by make_vec_env like the built-in ones."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.rewards import weighted_sum
from robot_rl.sim import make_vec_env
from robot_rl.sim.engine import EngineRequest, MujocoEngine, engine_names, register_engine


def test_weighted_sum_by_hand() -> None:
    view = np.array([[1.0, 2.0], [3.0, -1.0]])
    terms = {"a": lambda v, c: v[:, 0] * c, "b": lambda v, c: v[:, 1], "off": lambda v, c: v[:, 0] * np.nan}
    total, per_term = weighted_sum(terms, {"a": 2.0, "b": -0.5, "off": 0.0}, view, 10.0, 0.1, 2)
    np.testing.assert_allclose(per_term["a"], [1.0 * 10 * 0.2, 3.0 * 10 * 0.2])
    np.testing.assert_allclose(per_term["b"], [2.0 * -0.05, -1.0 * -0.05])
    np.testing.assert_allclose(total, [2.0 - 0.1, 6.0 + 0.05])
    assert "off" not in per_term  # weight 0: not evaluated, not reported
    with pytest.raises(KeyError):
        weighted_sum(terms, {"a": 1.0}, view, 1.0, 0.1, 2)


class CountingEngine(MujocoEngine):
    """A third engine: MuJoCo's, counting its steps (any engine registers the same way, e.g. a GPU one)."""

    name = "counting"
    steps = 0

    def __init__(self, request: EngineRequest) -> None:
        super().__init__(request)
        self.request = request

    def step(self, models, state, ctrl, out, sensordata) -> None:  # type: ignore[no-untyped-def]
        CountingEngine.steps += 1
        super().step(models, state, ctrl, out, sensordata)


def test_a_registered_engine_is_chosen_by_name_and_steps_the_same_worlds() -> None:
    register_engine("counting", CountingEngine)
    assert "counting" in engine_names()
    rng = np.random.default_rng(0)
    actions = [rng.uniform(-1, 1, (2, 4)) for _ in range(5)]
    runs = []
    for backend in ("mujoco", "counting"):
        env = make_vec_env("panda_reach", 2, seed=4, backend=backend, safety=False)
        assert env.backend == backend and env.engine.name == backend
        runs.append(np.stack([env.step(a)[0] for a in actions]))
        env.close()
    assert CountingEngine.steps == 5
    np.testing.assert_array_equal(runs[0], runs[1])
    with pytest.raises(ConfigError, match="unknown backend 'nope'"):
        make_vec_env("panda_reach", 1, seed=0, backend="nope")
