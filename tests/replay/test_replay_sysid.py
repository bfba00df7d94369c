"""System identification recovers hidden parameters of the simulated robot from a log it recorded."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from robot_rl.cli import main
from robot_rl.config import load_config
from robot_rl.logs import a1_contract, simulate_ticks, write_tick_bag
from robot_rl.sim import resolve_config

HIDDEN = {"friction": 0.6, "motor_strength": 0.8, "added_mass": 1.5, "latency": 3}


def test_sysid_recovers_hidden_parameters(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    contract = a1_contract()
    rng = np.random.default_rng(0)
    log = simulate_ticks(contract, lambda o: 0.5 * rng.standard_normal(12), 300, params=HIDDEN, reset_every=100,
                         safety=False)
    bag = write_tick_bag(tmp_path / "bag", log, contract)
    ds = tmp_path / "ds"
    assert main(["replay", str(bag), "--out", str(ds), "--set", "ground_truth=/sim_robot/ground_truth"]) == 0
    out = tmp_path / "rand.yaml"
    assert main(["sysid", str(ds), "--robot", "a1", "--out", str(out), "--set", "max_segments=40", "max_latency=5",
                 "horizon=2", "bootstrap=2", "bootstrap_evals=10"]) == 0
    import json

    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    values = result["values"]
    assert values["latency"] == HIDDEN["latency"]
    for key in ("friction", "motor_strength", "added_mass"):
        assert abs(values[key] - HIDDEN[key]) <= 0.15 * abs(HIDDEN[key]), (key, values[key])
        assert result["std"][key] >= result["gn_std"][key] >= 0.0
        assert len(result["bootstrap"][key]) == 2 and len(result["interval"][key]) == 2
    assert result["cost"] < 0.1 * result["nominal_cost"]
    # the written config trains with randomization centred on the fit
    from robot_rl.runner import TrainConfig

    cfg = load_config(TrainConfig, out)
    task_cfg = resolve_config(cfg.task, None, cfg.task_overrides)
    r = task_cfg.randomization
    assert r.friction.low < values["friction"] < r.friction.high
    assert r.latency_steps.low <= 3 <= r.latency_steps.high
    assert "sysid" in out.read_text().splitlines()[0] and yaml.safe_load(out.read_text())["task"] == "a1_walk"


def _small_dataset(tmp_path: Path, name: str, joint_vel_noise: float) -> object:
    """A short random-action log of the hidden robot (no latency), replayed to a dataset; optional sensor noise
    on the logged joint velocities (what a real encoder adds)."""
    from robot_rl.dataset import load_dataset

    contract = a1_contract()
    rng = np.random.default_rng(0)
    log = simulate_ticks(contract, lambda o: 0.5 * rng.standard_normal(12), 160,
                         params={"friction": 0.6, "motor_strength": 0.8, "added_mass": 1.5}, reset_every=80,
                         safety=False)
    bag = write_tick_bag(tmp_path / f"bag_{name}", log, contract)
    assert main(["replay", str(bag), "--out", str(tmp_path / name), "--set",
                 "ground_truth=/sim_robot/ground_truth"]) == 0
    ds = load_dataset(tmp_path / name)
    noise = np.random.default_rng(1)
    for ep in ds.episodes:
        ep.infos["joint_vel"] = ep.infos["joint_vel"] + joint_vel_noise * noise.standard_normal(
            ep.infos["joint_vel"].shape)
    return ds


def test_sysid_bootstrap_uncertainty_grows_with_sensor_noise(tmp_path: Path) -> None:
    """The bootstrap refits every resample of the segments: its spread is reported as std (never below the
    Gauss-Newton std) with a 5-95% interval, and a noisier log gives a wider one."""
    from robot_rl.sysid import SysIdConfig, identify

    # a clean synthetic log has no outlier segments to trim (and 24 segments are few to drop any)
    cfg = SysIdConfig(params=("motor_strength", "added_mass"), horizon=2, max_segments=24, max_evals=120,
                      profile_evals=40, bootstrap=5, bootstrap_evals=30, trim=0.0)
    clean = identify(_small_dataset(tmp_path, "clean", 0.0), "a1", cfg)  # type: ignore[arg-type]
    noisy = identify(_small_dataset(tmp_path, "noisy", 1.0), "a1", cfg)  # type: ignore[arg-type]
    for fit in (clean, noisy):
        assert set(fit.bootstrap) == {"motor_strength", "added_mass"} and "latency" not in fit.values
        for key in ("motor_strength", "added_mass"):
            assert len(fit.bootstrap[key]) == 5
            lo, hi = fit.interval[key]
            assert lo <= hi and fit.std[key] >= fit.gn_std[key] > 0.0
    assert abs(clean.values["motor_strength"] - 0.8) < 0.05 and abs(clean.values["added_mass"] - 1.5) < 0.5
    width = {k: clean.interval[k][1] - clean.interval[k][0] for k in clean.interval}
    noisy_width = {k: noisy.interval[k][1] - noisy.interval[k][0] for k in noisy.interval}
    assert noisy_width["added_mass"] > width["added_mass"], (width, noisy_width)
    assert noisy.std["added_mass"] > clean.std["added_mass"]


def test_sysid_subsets_fit_disjoint_start_states_and_report_their_spread(tmp_path: Path) -> None:
    """`subsets=2`: two fits on interleaved, disjoint sets of start states; the result is their mean and its std is
    at least the spread between them / sqrt(2)."""
    from robot_rl.sim import make_robot_sim
    from robot_rl.sysid import SysIdConfig, identify, segments_from_dataset

    ds = _small_dataset(tmp_path, "subsets", 0.5)
    cfg = SysIdConfig(params=("motor_strength", "added_mass"), horizon=2, max_segments=12, max_evals=60,
                      profile_evals=20, bootstrap=0, trim=0.0, subsets=2)
    sim = make_robot_sim("a1", physics_dt=1.0 / ds.contract.physics_rate_hz)  # type: ignore[attr-defined]
    halves = [segments_from_dataset(ds, cfg, sim.model, sim.joint_names, subset=(k, 2)) for k in range(2)]  # type: ignore[arg-type]
    starts = [{s.qpos.tobytes() for s in half} for half in halves]
    assert len(starts[0]) == len(starts[1]) == 12 and not starts[0] & starts[1]

    fit = identify(ds, "a1", cfg)  # type: ignore[arg-type]
    assert fit.segments == 24
    for key in ("motor_strength", "added_mass"):
        xs = fit.subset_fits[key]
        assert len(xs) == 2 and xs[0] != xs[1]
        assert fit.values[key] == pytest.approx(np.mean(xs))
        assert fit.std[key] >= np.std(xs, ddof=1) / np.sqrt(2) - 1e-12
        assert fit.interval[key][0] <= min(xs) and fit.interval[key][1] >= max(xs)
    assert abs(fit.values["motor_strength"] - 0.8) < 0.1


def test_sysid_cli_subsets_show_progress_and_write_each_fit(tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    import json

    _small_dataset(tmp_path, "cli_subsets", 0.0)
    settings = tmp_path / "fit.yaml"
    settings.write_text("params: [motor_strength, added_mass]\nmax_segments: 12\nhorizon: 2\nmax_evals: 40\n")
    assert main(["sysid", str(tmp_path / "cli_subsets"), "--robot", "a1", "--config", str(settings), "--set",
                 "bootstrap=0", "trim=0", "subsets=2", "--out", str(tmp_path / "rand.yaml")]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any("subset 1/2" in line for line in lines) and any("subset 2/2" in line for line in lines)
    assert any("range over subsets" in line for line in lines)
    result = json.loads(lines[-1])
    assert len(result["subset_fits"]["added_mass"]) == 2 and result["segments"] == 24
    assert result["values"]["added_mass"] == pytest.approx(np.mean(result["subset_fits"]["added_mass"]))
    saved = yaml.safe_load((tmp_path / "rand.sysid_config.yaml").read_text())  # the resolved settings, beside
    assert saved["params"] == ["motor_strength", "added_mass"] and saved["subsets"] == 2 and saved["horizon"] == 2


def test_sysid_bootstrap_config_is_checked() -> None:
    from robot_rl.errors import ConfigError
    from robot_rl.sysid import SysIdConfig

    with pytest.raises(ConfigError, match="bootstrap"):
        SysIdConfig(bootstrap=1)
    with pytest.raises(ConfigError, match="subsets"):
        SysIdConfig(subsets=0)
    assert SysIdConfig(bootstrap=0).bootstrap == 0


def test_logged_timing_from_ros_clocks() -> None:
    """Physics steps between logged states and the command's arrival, from ticks whose stamps share one clock;
    a log on two clocks (simulator time vs wall time) gives no onset, and a missing next state marks the tick."""
    from robot_rl.sysid import _logged_timing

    st = 100.0 + np.array([0.0, 0.025, 0.045, 0.045, 0.065])
    infos = {"state_stamp": st, "stamp": st + np.array([0.004, 0.011, 0.0052, 0.021, 0.0]),
             "compute_time": np.full(5, 0.0005)}
    timing = _logged_timing(infos, 0.005, 4)
    assert timing is not None
    steps, onset = timing
    assert steps.tolist() == [5, 4, 0, 4, 0]
    assert onset.tolist() == [0, 2, 0, 4, 0]  # 4.5 ms -> 0, 11.5 -> 2, 5.7 -> 1 but no next state, 21.5 -> 4
    sim_clock = {**infos, "state_stamp": st - 100.0}
    steps2, onset2 = _logged_timing(sim_clock, 0.005, 4) or (None, None)
    assert steps2 is not None and onset2 is not None and not onset2.any()
    regular = {"state_stamp": np.arange(6) * 0.02, "stamp": 50.0 + np.arange(6) * 0.02, "compute_time": np.zeros(6)}
    assert _logged_timing(regular, 0.005, 4) is None  # nominal timing: nothing to model


def test_sysid_replay_with_logged_timing_matches_the_robot() -> None:
    """A robot (MuJoCo, actuation delay 2 physics steps) that receives each command some physics steps after the
    logged state, with irregular tick periods: replaying the logged timing reproduces its states at the true
    latency; the nominal replay (command at the tick, decimation steps) does not, and prefers a wrong latency."""
    from robot_rl.sim import make_robot_sim
    from robot_rl.sysid import Predictor, Segment, SysIdConfig

    robot = make_robot_sim("a1", physics_dt=0.005, params={"latency": 2})
    robot.reset(seed=0)
    prev = np.asarray(robot.state().joint_pos, float)
    robot.step(prev, 20)  # settle: the delay line holds `prev`
    qpos, qvel = robot.data.qpos.copy(), robot.data.qvel.copy()
    rng = np.random.default_rng(0)
    targets = prev + 0.3 * rng.standard_normal((3, 12))
    steps, onset = np.array([5, 3, 4]), np.array([2, 1, 0])
    held, states = prev, []
    for h in range(3):
        if onset[h]:
            robot.step(held, int(onset[h]))
        states.append(robot.step(targets[h], int(steps[h] - onset[h])))
        held = targets[h]
    seg = Segment(qpos=qpos, qvel=qvel, prev_target=prev, targets=targets,
                  next_q=np.stack([s.joint_pos for s in states]), next_qd=np.stack([s.joint_vel for s in states]),
                  next_gyro=np.stack([s.base_ang_vel for s in states]), steps=steps, onset=onset)
    nominal = Segment(**{**seg.__dict__, "steps": None, "onset": None})
    timed = Predictor("a1", 0.005, 4, [seg], SysIdConfig())
    plain = Predictor("a1", 0.005, 4, [nominal], SysIdConfig())
    costs = {lat: timed.cost({"latency": lat}) for lat in range(6)}
    assert min(costs, key=costs.__getitem__) == 2 and costs[2] < 1e-3, costs
    plain_costs = {lat: plain.cost({"latency": lat}) for lat in range(6)}
    assert min(plain_costs.values()) > 100 * costs[2], plain_costs


def test_sysid_compares_base_motion_and_torques_and_trims_outlier_segments(tmp_path: Path) -> None:
    """A log of the walking bundle's one deterministic gait with a ground-truth pose and joint torques: the
    prediction error also compares base height, base velocity and joint torques (what tells added mass from motor
    strength: they grow when the mass is wrong even with the strength refitted for the joints), and the cost
    leaves out the worst-predicted segments, so one corrupted segment does not move it."""
    from robot_rl.bundle import load_bundle
    from robot_rl.dataset import load_dataset
    from robot_rl.sysid import Predictor, SysIdConfig, segments_from_dataset

    bundle = load_bundle(Path(__file__).parents[1] / "ros" / "data" / "a1_walk")
    hidden = {"motor_strength": 0.8, "added_mass": 1.5}
    log = simulate_ticks(bundle.contract, bundle.act, 120, params=hidden, command=np.array([0.5, 0.0, 0.0]),
                         reset_every=1000, seed=0)
    bag = write_tick_bag(tmp_path / "bag", log, bundle.contract)
    assert main(["replay", str(bag), "--out", str(tmp_path / "ds"), "--set",
                 "ground_truth=/sim_robot/ground_truth"]) == 0
    ds = load_dataset(tmp_path / "ds")
    assert "joint_effort" in ds.episodes[0].infos and "base_pos" in ds.episodes[0].infos

    def predictor(cfg: SysIdConfig) -> Predictor:
        pred = Predictor("a1", 1.0 / bundle.contract.physics_rate_hz, bundle.contract.decimation, [], cfg)
        pred.segments = segments_from_dataset(ds, cfg, pred.sim.model, pred.sim.joint_names)
        return pred

    full = predictor(SysIdConfig(max_segments=20, trim=0.0))
    seg = full.segments[0]
    assert seg.next_height is not None and seg.next_vel is not None and seg.next_effort is not None
    assert full.width(seg) == 12 + 12 + 3 + 1 + 3 + 12
    joints = predictor(SysIdConfig(max_segments=20, trim=0.0, observables=("joint_pos", "joint_vel", "gyro")))
    assert joints.segments[0].next_height is None and joints.width(joints.segments[0]) == 27

    def base_and_torque_error(params: dict[str, float]) -> float:
        r = full.residuals(params).reshape(-1, full.width(seg))
        return float((r[:, 27:] ** 2).mean())

    truth = base_and_torque_error(hidden)
    assert base_and_torque_error({"motor_strength": 0.8, "added_mass": 0.0}) > 3 * truth
    assert base_and_torque_error({"motor_strength": 0.75, "added_mass": 0.5}) > 2 * truth
    # one corrupted segment (an encoder glitch): the trimmed cost does not see it
    trimmed = predictor(SysIdConfig(max_segments=20, trim=0.1))
    clean = full.cost(hidden)
    bad = trimmed.segments[7]
    bad.next_q = bad.next_q + 0.5
    assert trimmed.cost(hidden) <= clean
    assert 7 not in trimmed.kept(hidden) and len(trimmed.kept(hidden)) == 18
    full.segments[7] = bad
    assert full.cost(hidden) > 10 * clean
