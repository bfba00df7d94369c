"""PPO math: GAE against hand-computed numbers, bootstrap on truncation only, applied-action storage, update."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_rl.errors import ConfigError
from robot_rl.learner import LearnerSetup
from robot_rl.ppo import PPO, PPOConfig, compute_gae


def test_gae_hand_computed():
    # T=3, one env; the episode ends after step 1. gamma 0.9, lambda 0.8.
    rewards = torch.tensor([[1.0], [2.0], [3.0]])
    values = torch.tensor([[0.5], [1.0], [1.5]])
    dones = torch.tensor([[0.0], [1.0], [0.0]])
    adv, ret = compute_gae(rewards, values, dones, torch.tensor([2.0]), gamma=0.9, lam=0.8)
    # t=2: 3 + 0.9*2 - 1.5 = 3.3;  t=1: 2 - 1 = 1.0 (done);  t=0: (1 + 0.9*1 - 0.5) + 0.9*0.8*1.0 = 2.12
    np.testing.assert_allclose(adv.squeeze(1).numpy(), [2.12, 1.0, 3.3], rtol=1e-6)
    np.testing.assert_allclose(ret.squeeze(1).numpy(), [2.62, 2.0, 4.8], rtol=1e-6)


def _learner(num_envs: int = 3, num_steps: int = 2, value: float = 5.0, store_applied_action: bool = False) -> PPO:
    torch.manual_seed(0)
    cfg = PPOConfig(num_steps=num_steps, actor_hidden=[8], critic_hidden=[8], gamma=0.9,
                    store_applied_action=store_applied_action)
    ppo = PPO(cfg.new_policy(4, 2), cfg, LearnerSetup(num_envs=num_envs, action_clip=1.0))
    with torch.no_grad():  # constant critic: V(s) = value for every observation
        ppo.critic[-1].weight.zero_()
        ppo.critic[-1].bias.fill_(value)
    return ppo


def test_bootstrap_on_truncation_not_on_termination():
    ppo = _learner()
    ppo.act(np.random.default_rng(0).normal(size=(3, 4)))
    info = {"final_obs": np.ones((3, 4), np.float32)}
    # env0 truncated (time limit), env1 terminated, env2 both flags (termination wins), none for the rest
    ppo.process_env_step(np.zeros((3, 4)), np.array([1.0, 1.0, 1.0]), np.array([False, True, True]),
                         np.array([True, False, True]), info)
    np.testing.assert_allclose(ppo.rewards[0].numpy(), [1.0 + 0.9 * 5.0, 1.0, 1.0], rtol=1e-6)
    np.testing.assert_array_equal(ppo.dones[0].numpy(), [1.0, 1.0, 1.0])


def test_truncation_bootstrap_makes_time_limit_invisible():
    # With a perfect constant critic and reward r = (1 - gamma) * V, a truncated episode has zero advantage,
    # exactly as if it had continued; without the bootstrap it would look like a terminal drop.
    ppo = _learner(num_envs=1, num_steps=2, value=5.0)
    r = (1 - 0.9) * 5.0
    rng = np.random.default_rng(0)
    for truncated in (False, True):
        ppo.act(rng.normal(size=(1, 4)))
        ppo.process_env_step(rng.normal(size=(1, 4)), np.array([r]), np.array([False]), np.array([truncated]),
                             {"final_obs": np.zeros((1, 4), np.float32)})
    ppo.compute_returns(torch.randn(1, 4))
    np.testing.assert_allclose(ppo.advantages.numpy(), 0.0, atol=1e-6)


def test_applied_action_is_stored_where_the_safety_chain_changed_it():
    ppo = _learner(num_envs=2, num_steps=1, store_applied_action=True)
    sampled = ppo.act(np.random.default_rng(0).normal(size=(2, 4)))
    applied = np.clip(sampled, -1.0, 1.0)
    applied[0] = [0.3, -0.2]  # the chain modified env 0 only
    ppo.process_env_step(np.zeros((2, 4)), np.zeros(2), np.zeros(2, bool), np.zeros(2, bool),
                         {"final_obs": np.zeros((2, 4), np.float32), "applied_action": applied})
    np.testing.assert_allclose(ppo.actions[0, 0].numpy(), [0.3, -0.2])
    np.testing.assert_allclose(ppo.actions[0, 1].numpy(), sampled[1])  # the contract clip is not a change
    dist = torch.distributions.Normal(ppo.mu[0, 0], ppo.sigma[0, 0])
    assert ppo.log_probs[0, 0].item() == pytest.approx(dist.log_prob(torch.tensor([0.3, -0.2])).sum().item())


def test_update_returns_losses_and_adapts_learning_rate():
    ppo = _learner(num_envs=8, num_steps=4)
    rng = np.random.default_rng(0)
    for _ in range(4):
        ppo.act(rng.normal(size=(8, 4)))
        ppo.process_env_step(rng.normal(size=(8, 4)), np.random.default_rng(0).normal(size=8), np.zeros(8, bool),
                             np.zeros(8, bool), {})
    params = [*ppo.policy.parameters(), *ppo.critic.parameters()]
    before = [p.detach().clone() for p in params]
    losses = ppo.update()  # GAE from the last observation, then the epochs
    assert {"loss/surrogate", "loss/value", "loss/entropy", "policy/kl", "policy/learning_rate"} <= set(losses)
    assert all(np.isfinite(v) for v in losses.values())
    assert any(not torch.equal(a, b) for a, b in zip(before, params))
    assert losses["policy/learning_rate"] != pytest.approx(1e-3)  # the adaptive schedule moved it
    assert ppo.step == 0


@pytest.mark.parametrize("field,value", [("num_steps", 0), ("gamma", 1.5), ("learning_rate", -1.0)])
def test_invalid_ppo_config(field, value):
    with pytest.raises(ConfigError, match=f"ppo.{field}"):
        PPOConfig(**{field: value})


def test_non_finite_inputs_never_reach_the_network():
    ppo = _learner(num_envs=2, num_steps=2)
    for _ in range(2):
        obs = np.array([[np.nan, 1.0, np.inf, 0.0], [0.0, 1.0, 2.0, 3.0]], np.float32)
        ppo.act(obs)
        ppo.process_env_step(np.zeros((2, 4)), np.array([np.nan, 1.0]), np.zeros(2, bool), np.array([True, False]),
                             {"final_obs": np.full((2, 4), np.nan, np.float32)})
    losses = ppo.update()
    assert all(np.isfinite(v) for v in losses.values())
    assert all(bool(torch.isfinite(p).all()) for p in [*ppo.policy.parameters(), *ppo.critic.parameters()])
    assert bool(torch.isfinite(ppo.normalizer.mean).all())
