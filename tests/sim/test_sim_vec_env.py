"""Vectorized environment: API, every registered task, auto-reset, truncation vs termination, NaN recovery,
decoding through the contract, safety hook, Gymnasium adapter."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from robot_rl.control_step import intervened
from robot_rl.errors import ConfigError
from robot_rl.sim import make_vec_env, task_config, task_names

QUIET = ["randomization.enabled=false"]


@pytest.mark.parametrize("task", task_names())
def test_smoke_every_registered_task(task: str) -> None:
    env = make_vec_env(task, 4, seed=0, safety=False)
    obs = env.reset(seed=0)
    assert obs.shape == (4, env.obs_dim) and obs.dtype == np.float32
    assert env.contract.obs_dim == env.obs_dim and env.act_dim == env.contract.act_dim
    assert env.contract.action.type == "ee_delta" or env.act_dim == env.contract.num_joints
    assert type(env.cfg) is type(task_config(task))
    rng = np.random.default_rng(0)
    for _ in range(20):
        obs, rew, term, trunc, info = env.step(rng.uniform(-1, 1, (4, env.act_dim)))
        assert np.all(np.isfinite(obs)) and np.all(np.isfinite(rew))
        assert term.dtype == bool and trunc.dtype == bool
    assert {"final_obs", "reward_terms", "episodes", "applied_action", "safety", "nan_resets"} <= set(info)
    locomotion = {"tracking_lin_vel", "feet_air_time", "collision", "joint_limits"}
    manipulation = {"success", "action_rate", "joint_vel"}  # robot_rl.sim.manipulation tasks
    assert set(info["reward_terms"]) >= (locomotion if env.contract.command_names else manipulation)
    # every term with a weight is reported, and only those: what replay scores a log with
    assert set(info["reward_terms"]) == {k for k, w in env.task.reward_weights.items() if w != 0.0}
    frame = env.render(0, 64, 48)
    assert frame.shape == (48, 64, 3) and frame.dtype == np.uint8 and frame.std() > 0
    env.close()


def test_seeded_runs_are_identical_and_seeds_differ() -> None:
    def run(seed: int) -> np.ndarray:
        env = make_vec_env("a1_walk", 3, seed=seed, safety=False)
        rng = np.random.default_rng(1)
        obs = env.reset(seed=seed)
        for _ in range(10):
            obs = env.step(rng.uniform(-1, 1, (3, 12)))[0]
        return obs

    np.testing.assert_array_equal(run(5), run(5))
    assert not np.allclose(run(5), run(6))


def test_time_limit_truncates_and_auto_resets() -> None:
    env = make_vec_env("a1_walk", 3, seed=0, safety=False,
                       overrides=[*QUIET, "termination.episode_length_s=0.1", "init.base_velocity=0.0"])
    zeros = np.zeros((3, 12))
    for step in range(1, 6):
        obs, rew, term, trunc, info = env.step(zeros)
        assert not term.any()
        assert trunc.all() == (step == 5)
    assert len(info["episodes"]) == 3 and all(e["length"] == 5 and e["success"] for e in info["episodes"])
    # obs is already the next episode's first observation; final_obs the last one of the finished episode
    assert np.abs(obs[:, -12:]).max() == 0.0  # last_action of a fresh episode
    assert not np.allclose(info["final_obs"], obs)
    assert env.get_state().timestamp.max() == 0.0


def test_fall_terminates_and_is_not_truncation() -> None:
    env = make_vec_env("a1_walk", 2, seed=0, safety=False, overrides=QUIET)
    qpos = env.physics[:, 1:1 + env.model().nq]
    qpos[0, 2] = 0.15  # drop env 0 upside down onto its back
    qpos[0, 3:7] = [0.0, 1.0, 0.0, 0.0]
    for _ in range(20):
        _, _, term, trunc, info = env.step(np.zeros((2, 12)))
        if term[0]:
            break
    assert term[0] and not trunc[0] and not term[1]
    assert info["episodes"][0]["fell"]


def test_nan_state_resets_that_env_and_is_counted(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)  # MuJoCo writes its instability warning to ./MUJOCO_LOG.TXT
    env = make_vec_env("a1_walk", 3, seed=0, safety=False, overrides=QUIET)
    env.physics[:, 1 + env.model().nq:][1, 7] = np.nan
    obs, rew, term, trunc, info = env.step(np.zeros((3, 12)))
    assert info["nan_resets"] == 1 and env.nan_resets == 1
    assert term[1] and not term[0] and not term[2]
    assert np.all(np.isfinite(obs)) and np.all(np.isfinite(rew)) and rew[1] == 0.0
    assert info["episodes"][0]["unstable"]
    obs, _, _, _, info = env.step(np.zeros((3, 12)))
    assert np.all(np.isfinite(obs)) and info["nan_resets"] == 0 and env.nan_resets == 1


def test_actions_decode_through_the_contract() -> None:
    env = make_vec_env("a1_walk", 2, seed=0, safety=False, overrides=QUIET)
    action = np.random.default_rng(0).uniform(-2, 2, (2, 12))
    _, _, _, _, info = env.step(action)
    np.testing.assert_allclose(info["applied_action"], np.clip(action, -1, 1))
    np.testing.assert_allclose(env.controls()[:, -1], env.contract.act(action))  # no latency when randomization is off


def test_contract_carries_rates_gains_and_cbf_inertia() -> None:
    c = make_vec_env("a1_walk", 1, seed=0, safety=False).contract
    assert c.decimation == 4 and c.policy_rate_hz == 50.0 and c.kp == [20.0] * 12 and c.kd == [0.5] * 12
    assert [t.name for t in c.obs_terms] == ["base_ang_vel", "projected_gravity", "command", "joint_pos_rel",
                                             "joint_vel", "last_action"]
    assert c.torque_limit == [33.5] * 12 and c.command_names == ["vx", "vy", "yaw_rate"]
    cbf = [e for e in c.safety if e["type"] == "cbf"][0]
    inertia = np.asarray(cbf["joint_inertia"])
    assert inertia.shape == (12,) and np.all(inertia > 0.01) and np.all(inertia < 0.1)  # includes 0.01 armature
    assert c.provenance["task"] == "a1_walk" and "randomization" in c.provenance
    assert type(c).from_dict(c.to_dict()) == c


def test_safety_chain_filters() -> None:
    env = make_vec_env("a1_walk", 2, seed=0, safety=True, overrides=QUIET)
    assert env.safety_chain is not None
    env.step(np.zeros((2, 12)))
    # env 0's FR hip measured 0.02 rad below its upper limit, moving towards it at 20 rad/s: pushing further up
    # must be corrected; env 1 stands still, asks for its default pose and must pass unchanged (large actions at
    # rest can already cross the chain's margins: pos_margin + worst-case disturbance_torque response, see
    # docs/safety.md)
    seen = env.observed_state
    seen.joint_pos[0, 0], seen.joint_vel[0, 0] = 0.78, 20.0
    _, rew, _, _, info = env.step(np.array([np.ones(12), np.zeros(12)]))
    assert info["safety"]["safety/intervened"].tolist() == [True, False]
    assert info["applied_action"][0, 0] < 1.0
    np.testing.assert_allclose(info["applied_action"][1], np.zeros(12))
    # applied_action is the action that decodes to the certified targets (outside [-1, 1] when the chain says so)
    default = np.asarray(env.contract.default_joint_pos)
    np.testing.assert_allclose(env.control_step.safe, default + 0.25 * info["applied_action"])
    penalty = info["reward_terms"]["safety_intervention"]
    assert penalty[0] < -1e-3 and abs(penalty[1]) < 1e-12


def test_intervened_term_counts_what_the_control_step_reports() -> None:
    """The reward term, info["intervened"] and the control step's flag are one flag (one tolerance)."""
    env = make_vec_env("a1_walk", 4, seed=1, safety=True, overrides=[*QUIET, "rewards.safety_intervened=-0.5"])
    env.reset(seed=1)
    rng = np.random.default_rng(0)
    counted = 0
    for step in range(40):
        # swings of up to 2 action units (0.5 rad) per tick: beyond the 0.4 rad the rate limiter passes on some
        # joints and ticks, within it on others
        _, _, _, _, info = env.step(rng.uniform(0.0, 1.0, (4, 12)) * (1.0 if step % 2 else -1.0))
        term = info["reward_terms"]["safety_intervened"]
        np.testing.assert_array_equal(term < 0, info["intervened"])
        np.testing.assert_array_equal(info["intervened"], intervened(env.control_step.targets, env.control_step.safe))
        assert np.all((term == 0) | np.isclose(term, -0.5 * env.task.cfg.control.policy_dt))
        counted += int((term < 0).sum())
    assert 10 < counted < 150


def test_bad_config_is_a_config_error() -> None:
    with pytest.raises(ConfigError, match="unknown task"):
        make_vec_env("nope", 1, seed=0)
    with pytest.raises(ConfigError, match="commands.vx"):
        make_vec_env("a1_walk", 1, seed=0, overrides=["commands.vx=[1.0, -1.0]"])
    with pytest.raises(ConfigError, match="unknown key"):
        make_vec_env("a1_walk", 1, seed=0, overrides=["rewards.tracking=1.0"])
    with pytest.raises(ConfigError, match="backend"):
        make_vec_env("a1_walk", 1, seed=0, backend="isaac")


def test_gymnasium_adapter_passes_env_checker() -> None:
    env = gymnasium.make("robot_rl/A1Walk-v0")
    check_env(env.unwrapped, skip_render_check=True)
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    env.close()
