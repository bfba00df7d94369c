"""Shared fixtures. Everything here is seeded and builds real objects (no mocks of MuJoCo, rclpy, solvers)."""

from __future__ import annotations

import os
from collections.abc import Callable

import numpy as np
import pytest

os.environ.setdefault("MUJOCO_GL", "egl")

from robot_rl.contract import ActionSpec, ObsTerm, PolicyContract  # noqa: E402


def make_contract(n: int = 3, history: int = 1) -> PolicyContract:
    return PolicyContract(
        robot="toy",
        joint_names=[f"j{i}" for i in range(n)],
        default_joint_pos=[0.1 * i for i in range(n)],
        joint_pos_lower=[-1.0] * n,
        joint_pos_upper=[1.0] * n,
        joint_vel_limit=[10.0] * n,
        torque_limit=[20.0] * n,
        kp=[20.0] * n,
        kd=[0.5] * n,
        action=ActionSpec(scale=0.5),
        obs_terms=[
            ObsTerm("projected_gravity", 3),
            ObsTerm("command", 2),
            ObsTerm("joint_pos_rel", n, history=history),
            ObsTerm("last_action", n),
        ],
        command_names=["vx", "yaw"],
        command_ranges=[(-1.0, 1.0), (-0.5, 0.5)],
    )


@pytest.fixture
def toy_contract() -> PolicyContract:
    return make_contract()


@pytest.fixture
def contract_factory() -> Callable[..., PolicyContract]:
    """make_contract(n=3, history=1): a fixture, because sub-folder conftest modules shadow `import conftest`."""
    return make_contract


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(0)
