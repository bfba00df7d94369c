"""The safety chain inside the training environment: forward invariance on the ground with contacts, and the
damping backup really switching the simulated actuators (kp = 0, kd = chain.damping_kd)."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.sim import make_vec_env
from robot_rl.sim.locomotion import STRICT_GROUND_OVERRIDES

ENVS, STEPS = 4, 100


def _policy(name: str, rng: np.random.Generator, joint_vel: np.ndarray) -> np.ndarray:
    """random: uniform actions; adversarial: full scale in the direction each joint already moves."""
    if name == "random":
        return rng.uniform(-1.0, 1.0, joint_vel.shape)
    return np.where(np.abs(joint_vel) > 1e-3, np.sign(joint_vel), rng.choice([-1.0, 1.0], size=joint_vel.shape))


def _violations(policy: str, safety: bool, seed: int, overrides: tuple[str, ...] = ()) -> dict[str, int]:
    """Physics samples (env x physics step) with a joint outside the contract's position / velocity limits."""
    env = make_vec_env("a1_walk", ENVS, seed, safety=safety, overrides=list(overrides))
    c = env.contract
    lo, hi, vmax = (np.asarray(x) for x in (c.joint_pos_lower, c.joint_pos_upper, c.joint_vel_limit))
    rng = np.random.default_rng(seed)
    env.reset()
    out = {"pos": 0, "vel": 0, "falls": 0, "damping": 0}
    for _ in range(STEPS):
        _, _, term, _, info = env.step(_policy(policy, rng, env.get_state().joint_vel))
        q, v = env.substep_joint_states()
        out["pos"] += int(np.any((q > hi + 1e-9) | (q < lo - 1e-9), axis=2).sum())
        out["vel"] += int(np.any(np.abs(v) > vmax + 1e-9, axis=2).sum())
        out["falls"] += int(term.sum())
        if safety:
            out["damping"] += int(np.sum(info["safety"]["safety/damping"]))
    env.close()
    return out


@pytest.mark.parametrize("policy", ["random", "adversarial"])
def test_a1_on_the_ground_is_forward_invariant_with_the_strict_chain(policy: str) -> None:
    """make_vec_env("a1_walk", safety=True), randomization on, strict CBF settings: zero joint-limit / velocity-limit
    violations even when the policy drives the legs into the ground."""
    without = _violations(policy, safety=False, seed=1)
    with_chain = _violations(policy, safety=True, seed=1, overrides=STRICT_GROUND_OVERRIDES)
    print(f"\na1_walk {policy}: without chain {without}\na1_walk {policy}: with strict chain {with_chain}")
    if policy == "adversarial":
        assert without["pos"] + without["vel"] > 0
    assert with_chain["pos"] == 0
    assert with_chain["vel"] == 0


def test_a1_default_chain_holds_limits_under_a_random_policy() -> None:
    """The default (walkable) settings: a random policy on the ground never leaves the limits. Against the
    adversarial policy they reduce but do not remove contact-driven violations; the strict settings do that."""
    with_chain = _violations("random", safety=True, seed=1)
    adversarial = _violations("adversarial", safety=True, seed=1)
    unfiltered = _violations("adversarial", safety=False, seed=1)
    print(f"\na1_walk default chain: random {with_chain}, adversarial {adversarial} (unfiltered {unfiltered})")
    assert with_chain["pos"] == 0 and with_chain["vel"] == 0
    assert adversarial["pos"] < unfiltered["pos"]


def test_damping_backup_switches_the_actuators() -> None:
    env = make_vec_env("a1_walk", 2, 0, safety=True)
    chain = env.safety_chain
    env.reset()
    kp_pd = [env.model(i).actuator_gainprm[:, 0].copy() for i in range(2)]
    assert all(np.all(g > 0) for g in kp_pd)
    chain.estop("test")
    _, _, _, _, info = env.step(np.zeros((2, 12)))
    assert np.all(info["safety"]["safety/damping"]) and np.all(env.damping)
    kd_scale = env.episode_params["kd_scale"]
    strength = env.episode_params["motor_strength"]
    for i in range(2):
        m = env.model(i)
        np.testing.assert_allclose(m.actuator_gainprm[:, 0], 0.0)
        np.testing.assert_allclose(m.actuator_biasprm[:, 1], 0.0)
        np.testing.assert_allclose(m.actuator_biasprm[:, 2], -chain.damping_kd * kd_scale[i] * strength[i])
    chain.reset()
    _, _, _, _, info = env.step(np.zeros((2, 12)))
    assert not np.any(info["safety"]["safety/damping"]) and not np.any(env.damping)
    for i in range(2):
        np.testing.assert_allclose(env.model(i).actuator_gainprm[:, 0], kp_pd[i])
