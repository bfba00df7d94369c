"""Each domain-randomization term changes the real MuJoCo model or what the policy sees; ranges are validated;
applied values are logged and seeded."""

from __future__ import annotations

import numpy as np
import pytest

from robot_rl.errors import ConfigError
from robot_rl.sim import make_vec_env

# Every term off (zero-width nominal ranges) except the one a test sets.
NOMINAL = {"friction": "[1.0, 1.0]", "added_mass": "[0.0, 0.0]", "com_offset": "[0.0, 0.0]",
           "motor_strength": "[1.0, 1.0]", "kp_scale": "[1.0, 1.0]", "kd_scale": "[1.0, 1.0]",
           "latency_steps": "[0, 0]", "joint_pos_noise": "[0.0, 0.0]", "joint_vel_noise": "[0.0, 0.0]",
           "ang_vel_noise": "[0.0, 0.0]", "quat_noise": "[0.0, 0.0]", "joint_pos_bias": "[0.0, 0.0]",
           "ang_vel_bias": "[0.0, 0.0]"}


def env_with(n: int = 2, seed: int = 0, **ranges: tuple[float, float]):  # type: ignore[no-untyped-def]
    over = ["init.joint_noise=0.0", "init.base_velocity=0.0", "init.random_yaw=false",
            "randomization.push_velocity.when=never"]
    for name, default in NOMINAL.items():
        lo, hi = ranges.get(name, eval(default))
        over += [f"randomization.{name}.low={lo}", f"randomization.{name}.high={hi}"]
    return make_vec_env("a1_walk", n, seed=seed, safety=False, overrides=over)


def settle(env, steps: int = 25) -> None:  # type: ignore[no-untyped-def]
    for _ in range(steps):
        env.step(np.zeros((env.num_envs, 12)))


def test_nominal_envs_are_identical() -> None:
    env = env_with()
    settle(env)
    s = env.get_state()
    np.testing.assert_allclose(s.joint_pos[0], s.joint_pos[1], atol=1e-9)


def test_friction_changes_floor_and_sliding() -> None:
    env = env_with(friction=(0.05, 0.05))
    floor = env.task.param_ids.floor_geom
    assert env.model(0).geom_friction[floor, 0] == pytest.approx(0.05)
    ref = env_with(friction=(1.0, 1.0))
    # the same sideways push slides further on ice
    for e in (env, ref):
        e.physics[:, 1 + e.model().nq] = 1.0
        settle(e, 15)
    assert abs(env.get_state().base_pos[0, 0]) > abs(ref.get_state().base_pos[0, 0]) + 0.02


def test_added_mass_changes_mass_and_foot_load() -> None:
    heavy, ref = env_with(added_mass=(3.0, 3.0)), env_with()
    trunk = heavy.task.param_ids.base_body
    assert heavy.model(0).body_mass[trunk] == pytest.approx(ref.model(0).body_mass[trunk] + 3.0)
    # derived constants follow the new mass (mj_setConst): the world's subtree mass is the robot's total mass
    assert heavy.model(0).body_subtreemass[0] == pytest.approx(ref.model(0).body_subtreemass[0] + 3.0)
    settle(heavy, 75), settle(ref, 75)
    load = [e.sensordata()[:, :, e.task._s_feet].sum(axis=2).mean() for e in (heavy, ref)]  # noqa: SLF001
    assert load[0] - load[1] == pytest.approx(3.0 * 9.81, rel=0.15)


def test_com_offset_moves_trunk_com_and_tilts() -> None:
    env, ref = env_with(com_offset=(0.05, 0.05)), env_with()
    trunk = env.task.param_ids.base_body
    np.testing.assert_allclose(env.model(0).body_ipos[trunk], ref.model(0).body_ipos[trunk] + 0.05)
    settle(env), settle(ref)
    assert not np.allclose(env.get_state().base_quat, ref.get_state().base_quat, atol=1e-3)


def test_motor_strength_scales_actuator_force() -> None:
    env, ref = env_with(motor_strength=(0.5, 0.5)), env_with()
    np.testing.assert_allclose(env.model(0).actuator_gainprm[:, 0], 0.5 * ref.model(0).actuator_gainprm[:, 0])
    settle(env), settle(ref)
    assert env.get_state().base_pos[0, 2] < ref.get_state().base_pos[0, 2] - 0.01  # weaker legs sag more


def test_gain_scales_change_pd_coefficients() -> None:
    env, ref = env_with(kp_scale=(1.5, 1.5), kd_scale=(0.5, 0.5)), env_with()
    np.testing.assert_allclose(env.model(0).actuator_biasprm[:, 1], 1.5 * ref.model(0).actuator_biasprm[:, 1])
    np.testing.assert_allclose(env.model(0).actuator_biasprm[:, 2], 0.5 * ref.model(0).actuator_biasprm[:, 2])
    settle(env, 75), settle(ref, 75)
    assert env.get_state().base_pos[0, 2] > ref.get_state().base_pos[0, 2] + 0.005  # stiffer legs sag less


def test_latency_delays_the_applied_target() -> None:
    env = env_with(latency_steps=(3, 3))
    assert env.episode_params["latency_steps"].tolist() == [3, 3]
    settle(env, 2)
    default = np.asarray(env.contract.default_joint_pos)
    env.step(np.ones((2, 12)))
    new = default + 0.25
    np.testing.assert_allclose(env.controls()[:, :3], np.broadcast_to(default, (2, 3, 12)))  # 3 steps of the old one
    np.testing.assert_allclose(env.controls()[:, 3], np.broadcast_to(new, (2, 12)))


def test_latency_is_drawn_per_episode_in_range() -> None:
    env = env_with(n=64, latency_steps=(0, 6))
    lat = env.episode_params["latency_steps"]
    assert lat.min() >= 0 and lat.max() <= 6 and len(set(lat.tolist())) > 3


def test_observation_noise_and_bias_change_what_the_policy_sees() -> None:
    clean = env_with()
    noisy = env_with(joint_vel_noise=(1.0, 1.0), joint_pos_bias=(0.1, 0.1), ang_vel_bias=(0.2, 0.2))
    o_clean, o_noisy = clean.reset(seed=0), noisy.reset(seed=0)
    np.testing.assert_allclose(clean.get_state().joint_pos, noisy.get_state().joint_pos)  # same physics
    jp, jv, gyro = slice(9, 21), slice(21, 33), slice(0, 3)
    np.testing.assert_allclose(o_noisy[:, jp] - o_clean[:, jp], 0.1, atol=1e-5)
    np.testing.assert_allclose(o_noisy[:, gyro] - o_clean[:, gyro], 0.2 * 0.25, atol=1e-5)
    assert np.std(o_noisy[:, jv] - o_clean[:, jv]) > 0.02  # 1 rad/s noise x obs scale 0.05


def test_pushes_kick_the_base_at_intervals() -> None:
    over = ["randomization.push_interval_s.low=0.02", "randomization.push_interval_s.high=0.02",
            "randomization.push_velocity.low=1.0", "randomization.push_velocity.high=1.0",
            "init.base_velocity=0.0", "randomization.friction.low=1.0", "randomization.friction.high=1.0"]
    env = make_vec_env("a1_walk", 2, seed=0, safety=False, overrides=over)
    before = np.linalg.norm(env.physics[:, 1 + env.model().nq:][:, 0:2], axis=1)
    env.task.perturb(np.random.default_rng(0))  # the push timers ran out
    after = np.linalg.norm(env.physics[:, 1 + env.model().nq:][:, 0:2], axis=1)
    assert np.all(after > before + 0.5)


def test_randomization_is_seeded_logged_and_resampled_per_episode() -> None:
    over = ["termination.episode_length_s=0.04"]
    a = make_vec_env("a1_walk", 3, seed=7, safety=False, overrides=over)
    b = make_vec_env("a1_walk", 3, seed=7, safety=False, overrides=over)
    first = a.episode_params
    np.testing.assert_array_equal(first["friction"], b.episode_params["friction"])
    a.step(np.zeros((3, 12)))
    _, _, _, trunc, info = a.step(np.zeros((3, 12)))
    assert trunc.all()
    logged = info["randomization"]
    assert logged["envs"].tolist() == [0, 1, 2]
    np.testing.assert_array_equal(logged["friction"], a.episode_params["friction"])
    assert not np.allclose(logged["friction"], first["friction"])
    floor = a.task.param_ids.floor_geom
    assert a.model(1).geom_friction[floor, 0] == pytest.approx(logged["friction"][1])


@pytest.mark.parametrize("override, field", [
    ("randomization.friction.low=-0.1", "randomization.friction"),
    ("randomization.motor_strength.low=1.2", "randomization.motor_strength"),
    ("randomization.latency_steps.low=-1", "randomization.latency_steps"),
    ("randomization.joint_vel_noise.high=-1.0", "randomization.joint_vel_noise"),
])
def test_negative_or_inverted_ranges_are_config_errors(override: str, field: str) -> None:
    with pytest.raises(ConfigError, match=field.replace(".", r"\.")):
        make_vec_env("a1_walk", 1, seed=0, overrides=[override])


@pytest.mark.parametrize("task, override, message", [
    ("panda_push", "randomization.object_mass.high=.inf", "randomization.object_mass: bounds must be finite"),
    ("a1_walk", "randomization.friction.high=.nan", "randomization.friction: bounds must be finite"),
    ("panda_reach", "randomization.kp_scale.when=interval", "randomization.kp_scale: applies at startup"),
    ("a1_walk", "randomization.push_velocity.when=reset", "randomization.push_velocity: applies at intervals"),
    ("a1_walk", "randomization.kd_scale.distribution=log_uniform", None),
    ("panda_push", "randomization.joint_damping.distribution=log_uniform", "log_uniform range needs low > 0"),
])
def test_every_family_validates_its_terms_the_same_way(task: str, override: str, message: str | None) -> None:
    """One validator for every task family (the arm copy had lost the finiteness check)."""
    if message is None:
        make_vec_env(task, 1, seed=0, safety=False, overrides=[override]).close()
        return
    with pytest.raises(ConfigError, match=message.replace(".", r"\.")):
        make_vec_env(task, 1, seed=0, safety=False, overrides=[override])


def test_startup_terms_are_drawn_once_and_kept_over_episodes() -> None:
    over = ["termination.episode_length_s=0.04", "randomization.friction.when=startup",
            "randomization.kd_scale.distribution=log_uniform", "randomization.kd_scale.low=0.5",
            "randomization.kd_scale.high=2.0"]
    env = make_vec_env("a1_walk", 4, seed=3, safety=False, overrides=over)
    first = env.episode_params
    assert len(set(first["friction"].round(9))) == 4  # drawn per world ...
    for _ in range(4):
        env.step(np.zeros((4, 12)))
    later = env.episode_params
    np.testing.assert_array_equal(later["friction"], first["friction"])  # ... and kept over resets
    assert not np.allclose(later["kd_scale"], first["kd_scale"])  # reset terms are redrawn
    assert np.all((later["kd_scale"] >= 0.5) & (later["kd_scale"] <= 2.0))
    floor = env.task.param_ids.floor_geom
    assert env.model(2).geom_friction[floor, 0] == pytest.approx(first["friction"][2])
