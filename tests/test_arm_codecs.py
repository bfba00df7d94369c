"""Arm actions decode outside the environment exactly as inside it: the codec the contract's action type registers
(robot_rl.control_step.codec_for), which replay and the policy node use, against the environment's own step."""

from __future__ import annotations

import copy

import numpy as np
import pytest

from robot_rl.contract import ActionSpec
from robot_rl.control_step import ControlStep, JointDeltaCodec, codec_for
from robot_rl.errors import ContractError
from robot_rl.sim import make_vec_env
from robot_rl.sim.arm_task import measured_extras
from robot_rl.state import RobotState


def test_joint_delta_arm_action_out_of_range_decodes_as_the_environment_does():
    env = make_vec_env("panda_reach", 2, seed=3, overrides=["control.action=joint_position_delta"], safety=False)
    c = env.contract
    seen = copy.deepcopy(env.observed_state)
    # the fingers start open, at the top of their range: +1 drives them past it
    action = np.ones((2, c.act_dim))
    env.step(action)
    in_env = env.control_step.targets.copy()
    unclipped = seen.joint_pos + c.action.scale * action
    assert np.any(unclipped > np.asarray(c.joint_pos_upper))

    outside = ControlStep(c, (2,), codec=codec_for(c))  # what replay and the policy node build
    _, targets = outside.decode(action, seen)
    assert np.array_equal(targets, in_env)
    assert np.array_equal(targets, c.act(action, seen))
    assert np.all(targets <= np.asarray(c.joint_pos_upper)) and np.all(targets >= np.asarray(c.joint_pos_lower))
    assert not np.array_equal(ControlStep(c, (2,), codec=JointDeltaCodec(c)).decode(action, seen)[1], in_env)
    env.close()


def test_ee_delta_decodes_outside_the_environment_from_measured_joints_as_inside():
    """The robot has no environment to refresh the Jacobian: the registered ee_delta codec builds the arm model the
    contract's task names and computes the kinematics at the measured joints."""
    quiet = ["randomization.joint_pos_noise.high=0.0", "randomization.joint_vel_noise.high=0.0"]
    env = make_vec_env("panda_pick_place", 3, seed=5, overrides=quiet, safety=False)
    c = env.contract
    assert c.action.type == "ee_delta"
    outside = ControlStep(c, (3,), codec=codec_for(c))
    one = ControlStep(c, (), codec=codec_for(c))  # a robot: a batch of one
    rng = np.random.default_rng(0)
    for _ in range(3):
        seen = copy.deepcopy(env.observed_state)
        action = rng.uniform(-1.5, 1.5, (3, c.act_dim))
        env.step(action)
        in_env = env.control_step.targets.copy()
        _, targets = outside.decode(action, seen)
        np.testing.assert_allclose(targets, in_env, rtol=0, atol=1e-12)
        robot = copy.deepcopy(seen)
        robot.joint_pos = seen.joint_pos[1]
        np.testing.assert_allclose(one.decode(action[1], robot)[1], in_env[1], rtol=0, atol=1e-12)
        applied = outside.encode(in_env, seen)
        assert applied.shape == (3, c.act_dim) and np.all(np.abs(applied) <= c.action.clip)
    env.close()


def test_ee_delta_without_an_arm_task_in_the_provenance_is_refused_naming_it(toy_contract):
    c = toy_contract.replace(action=ActionSpec(type="ee_delta", dim=4))
    with pytest.raises(ContractError, match="ee_delta action: the contract's provenance names no registered arm"):
        codec_for(c)


def test_measured_extras_rebuild_the_observed_task_quantities_from_joints_and_poses():
    """On a robot the grasp point comes from the arm model at the measured joints, object and goal from perception:
    the same `extra.*` values the environment observed."""
    quiet = ["randomization.joint_pos_noise.high=0.0", "randomization.object_pos_noise.high=0.0"]
    for task in ("panda_pick_place", "panda_reach"):
        env = make_vec_env(task, 2, seed=1, overrides=quiet, safety=False)
        env.step(np.zeros((2, env.contract.act_dim)))
        seen = env.observed_state
        extras = measured_extras(env.contract)
        for i in range(2):
            robot = RobotState(joint_pos=seen.joint_pos[i].copy(), joint_vel=seen.joint_vel[i].copy(),
                               base_quat=np.array([1.0, 0, 0, 0]), base_ang_vel=np.zeros(3), base_lin_acc=np.zeros(3))
            positions = {name: seen.extras[f"{name}_pos"][i] for name in extras.inputs}
            vel = seen.extras["object_vel"][i] if "object_vel" in seen.extras else np.zeros(3)
            extras.fill(robot, positions, vel)
            assert sorted(robot.extras) == sorted(seen.extras)
            for key, value in robot.extras.items():
                np.testing.assert_allclose(value, seen.extras[key][i], rtol=0, atol=1e-12, err_msg=f"{task} {key}")
        env.close()
