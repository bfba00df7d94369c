"""Logged arm transitions are scored as the environment scored them: `ArmTask.logged_view` rebuilds the reward view
from what a log holds (observations, joint velocities, actions), the task's own weighted sum does the rest."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.logs import env_ticks
from robot_rl.rewards import weighted_sum
from robot_rl.sim import make_vec_env
from robot_rl.sim.task import LoggedSteps

# sensors without noise and the nominal cube: the log then holds exactly what the environment scored with
EXACT = ["randomization.joint_pos_noise.high=0.0", "randomization.joint_vel_noise.high=0.0",
         "randomization.object_pos_noise.high=0.0", "randomization.object_size.low=1.0",
         "randomization.object_size.high=1.0"]


@pytest.mark.parametrize("task", ["panda_reach", "panda_pick_place"])
def test_logged_view_scores_each_transition_as_the_environment(task: str) -> None:
    env = make_vec_env(task, 1, seed=2, overrides=EXACT, safety=False)
    rng = np.random.default_rng(0)
    log, scored = env_ticks(env, lambda obs: rng.uniform(-1.2, 1.2, env.act_dim), 30)
    ticks = [rec for _, rec in log.ticks]
    c, arm = env.contract, env.task
    clipped = np.clip(np.stack([r.action for r in ticks]).astype(np.float64), -c.action.clip, c.action.clip)
    # the next observation of tick k is the one env_ticks logged at tick k + 1; the last tick has none
    t = len(ticks) - 1
    obs_next = np.stack([r.observation for r in ticks[1:]])
    joint_vel = np.stack([r.state.joint_vel for r in ticks[1:]])
    last = np.concatenate([np.zeros((1, c.act_dim)), clipped[:t - 1]])
    steps = LoggedSteps(observations=obs_next, joint_pos=np.stack([r.state.joint_pos for r in ticks[1:]]),
                        joint_vel=joint_vel, base_quat=np.zeros((t, 4)), base_ang_vel=np.zeros((t, 3)),
                        applied=clipped[:t], last_action=last, policy_action=clipped[:t],
                        intervened=np.zeros(t, bool), command=np.zeros((t, 3)), joint_effort=None, base_pos=None,
                        base_lin_vel=None, touch=None)
    view, inputs = arm.logged_view(steps)
    assert inputs == frozenset()
    _, terms = weighted_sum(arm.reward_terms, arm.reward_weights, view, arm.reward_config, c.policy_dt, t)
    assert set(terms) == set(scored[0]) and np.ptp(terms["reach"]) > 0  # the hand moved: the terms say something
    for name, values in terms.items():
        np.testing.assert_allclose(values, [s[name] for s in scored[:t]], rtol=0, atol=2e-6, err_msg=name)
    env.close()
