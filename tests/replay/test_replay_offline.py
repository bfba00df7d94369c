"""Offline learners and the replay buffer on a tiny seeded point-mass task: each must learn in seconds."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import torch

from robot_rl.learner import Learner, LearnerSetup, get_algorithm, make_learner
from robot_rl.networks import Policy
from robot_rl.offline.buffer import ReplayBuffer, Transitions, sample_symmetric
from robot_rl.offline.iql import IQLConfig
from robot_rl.offline.loop import evaluate_policy, run_online, train_offline
from robot_rl.offline.offpolicy import CriticConfig, ReplayConfig
from robot_rl.offline.sac import SAC, SACConfig
from robot_rl.offline.td3bc import TD3BCConfig

from .replay_pointenv import PointVecEnv, collect, expert

torch.set_num_threads(1)


def _return(policy: Policy) -> float:
    return evaluate_policy(policy, PointVecEnv(32, seed=123), episodes=32, seed=123)["return_mean"]


def _offline(algo: str, policy: Policy, data: Transitions, cfg: object = None) -> Learner:
    """`algo` learning from `data` in batches of 128."""
    cfg = cfg or get_algorithm(algo).config()
    cfg = dataclasses.replace(cfg, replay=dataclasses.replace(cfg.replay, batch_size=128))
    return make_learner(algo, policy, cfg, LearnerSetup(offline=ReplayBuffer.from_transitions(data)))


def _behaviour_return(data: Transitions) -> float:
    """Mean return of the logged episodes."""
    return float(data.reward.sum() / max(1, (data.terminated | data.truncated).sum()))


@pytest.fixture(scope="module")
def mixed_data() -> Transitions:
    """Half random, half noisy-expert behaviour: offline RL should beat its average."""
    rng = np.random.default_rng(0)

    def behaviour(obs: np.ndarray) -> np.ndarray:
        rand = rng.uniform(-1, 1, size=obs.shape)
        good = expert(obs) + 0.3 * rng.standard_normal(obs.shape)
        pick = rng.random(len(obs))[:, None] < 0.5
        return np.where(pick, rand, good)

    return collect(behaviour, 32, 200, seed=1)


def test_buffer_ring_and_symmetric_sampling() -> None:
    buf = ReplayBuffer(5, 1, 1)
    rows = Transitions.empty(1, 1, 7)
    rows.reward[:] = np.arange(7)
    buf.add(rows)
    assert len(buf) == 5 and sorted(buf.all().reward.tolist()) == [2, 3, 4, 5, 6]
    off = Transitions.empty(1, 1, 10)
    on = Transitions.empty(1, 1, 10)
    off.reward[:], on.reward[:] = -1.0, 1.0
    batch = sample_symmetric(ReplayBuffer.from_transitions(off), ReplayBuffer.from_transitions(on), 64,
                             np.random.default_rng(0))
    assert (batch.reward < 0).sum() == 32 and (batch.reward > 0).sum() == 32
    only = sample_symmetric(ReplayBuffer.from_transitions(off), ReplayBuffer(4, 1, 1), 8, np.random.default_rng(0))
    assert np.all(only.reward < 0)


def test_bc_recovers_expert() -> None:
    rng = np.random.default_rng(0)
    data = collect(lambda o: expert(o) + 0.05 * rng.standard_normal(o.shape), 16, 100, seed=2)
    policy = Policy(2, 2, (64, 64))
    policy.set_statistics(data.obs)
    before = _return(policy)
    train_offline(_offline("bc", policy, data), steps=1500)
    test_obs = np.random.default_rng(5).uniform(-1, 1, size=(256, 2)).astype(np.float32)
    err = np.abs(policy.act(test_obs) - expert(test_obs)).mean()
    assert err < 0.1
    assert _return(policy) > before + 5.0


@pytest.fixture(scope="module")
def bc_return(mixed_data: Transitions) -> float:
    torch.manual_seed(0)
    bc = Policy(2, 2, (64, 64))
    bc.set_statistics(mixed_data.obs)
    train_offline(_offline("bc", bc, mixed_data), steps=800)
    return _return(bc)


@pytest.mark.parametrize("algo,cfg", [("td3bc", TD3BCConfig(critic=CriticConfig(hidden=[64, 64]))),
                                      ("iql", IQLConfig(critic=CriticConfig(hidden=[64, 64]))),
                                      ("iql", IQLConfig(critic=CriticConfig(hidden=[64, 64]), value_loss="huber"))])
def test_offline_rl_beats_behaviour(mixed_data: Transitions, bc_return: float, algo: str, cfg: object) -> None:
    torch.manual_seed(0)
    behaviour_return = _behaviour_return(mixed_data)
    policy = Policy(2, 2, (64, 64))
    policy.set_statistics(mixed_data.obs)
    train_offline(_offline(algo, policy, mixed_data, cfg), steps=1200)
    ret, bc_ret = _return(policy), bc_return
    assert ret > behaviour_return + 2.0, (ret, behaviour_return)
    assert ret > bc_ret, (ret, bc_ret)


def test_td3bc_critic_warmup_keeps_the_actor_then_learns(mixed_data: Transitions, bc_return: float) -> None:
    """With rewards scaled and the critic fitted first, TD3+BC leaves the actor untouched during the warm-up and
    still beats the behaviour and BC afterwards (on a walking A1's log the unwarmed actor followed a random critic
    and fell in every episode after 2,500 updates)."""
    torch.manual_seed(0)
    policy = Policy(2, 2, (64, 64))
    policy.set_statistics(mixed_data.obs)
    start = {k: v.clone() for k, v in policy.state_dict().items()}
    learner = _offline("td3bc", policy, mixed_data,
                       TD3BCConfig(critic=CriticConfig(hidden=[64, 64], reward_scale=2.0), critic_warmup=300))
    train_offline(learner, steps=300)
    assert all(torch.equal(start[k], v) for k, v in policy.state_dict().items())
    train_offline(learner, steps=1200)
    behaviour_return = _behaviour_return(mixed_data)
    ret = _return(policy)
    assert ret > behaviour_return + 2.0 and ret > bc_return, (ret, behaviour_return, bc_return)


def test_sac_online_utd_learns_and_uses_offline_data(mixed_data: Transitions) -> None:
    torch.manual_seed(0)
    policy = Policy(2, 2, (64, 64))
    policy.set_statistics(mixed_data.obs)
    before = _return(policy)
    sac = SAC(policy, SACConfig(replay=ReplayConfig(utd_ratio=2.0, batch_size=128), droq=True,
                                critic=CriticConfig(hidden=[64, 64])),
              LearnerSetup(num_envs=8, offline=ReplayBuffer.from_transitions(mixed_data), seed=0))
    stats = run_online(sac, PointVecEnv(8, seed=3), steps=800, seed=3)
    assert len(sac.feed.online) == 800 and stats["episodes"] > 0
    assert _return(policy) > before + 3.0


def test_ppo_finetune_improves_and_warms_up_the_critic_first() -> None:
    """Online PPO from a bundle's actor (fixed observation statistics): the first iterations fit only the value
    function (actor unchanged), then the policy improves on the point-mass task."""
    from robot_rl.offline.finetune import FINETUNE_PPO
    from robot_rl.ppo import PPO

    torch.manual_seed(0)
    policy = Policy(2, 2, (32, 32), init_std=0.2)
    policy.set_statistics(np.random.default_rng(0).uniform(-1.5, 1.5, (256, 2)))
    start = {k: v.clone() for k, v in policy.net.state_dict().items()}
    before = _return(policy)
    setup = LearnerSetup(num_envs=16, action_clip=1.0)
    warm = PPO(policy, dataclasses.replace(FINETUNE_PPO, critic_warmup=2, num_steps=20), setup)
    run_online(warm, PointVecEnv(16, seed=0), steps=2 * 20 * 16)
    assert all(torch.equal(start[k], v) for k, v in policy.net.state_dict().items())
    with torch.no_grad():
        policy.log_std.fill_(math.log(0.5))
    ppo = PPO(policy, dataclasses.replace(FINETUNE_PPO, critic_warmup=3, num_steps=20, learning_rate=1e-3,
                                          desired_kl=0.02), setup)
    stats = run_online(ppo, PointVecEnv(16, seed=0), steps=40 * 20 * 16)
    assert stats["transitions"] == 40 * 20 * 16 and stats["episodes"] > 0
    after = _return(policy)
    assert after > before + 3.0, (before, after)


def test_evaluate_policy_counts_falls_in_the_simulated_a1() -> None:
    from robot_rl.sim import make_vec_env

    class Constant:
        def __init__(self, action: np.ndarray) -> None:
            self.action = action

        def act(self, obs_raw: np.ndarray) -> np.ndarray:
            return np.broadcast_to(self.action, (obs_raw.shape[0], 12)).copy()

    env = make_vec_env("a1_walk", 4, 0, overrides=["termination.episode_length_s=2.0"], safety=False)
    try:
        stand = evaluate_policy(Constant(np.zeros(12)), env, 4, seed=0)
        # hips out, thighs back and forth, calves stretched on one side: the robot tips over
        splayed = np.tile([1.0, -1.0, 1.0], 4) * np.array([1, 1, 1, -1, 1, 1, 1, 1, 1, -1, 1, 1])
        tip = evaluate_policy(Constant(splayed), env, 4, seed=0)
    finally:
        env.close()
    assert stand["fell_rate"] == 0.0 and stand["length_mean"] == 100.0
    assert tip["fell_rate"] >= 0.5 and tip["length_mean"] < 100.0
