"""rosbag2 -> dataset: round trips through bags these tests record (MCAP and SQLite3), damaged bags, raw-topic bags,
bad input. Bags are written with the rosbags writer in the recorder's ControlTick format (robot_rl.tick_record)."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.dataset import load_dataset, reward_terms
from robot_rl.logs import SimLog, write_raw_bag, write_tick_bag

from .conftest import record_a1_log


def _digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_replay_round_trip_has_exactly_the_recorded_ticks(tmp_path: Path, contract, log: SimLog,  # type: ignore[no-untyped-def]
                                                          storage: str, capsys: pytest.CaptureFixture[str]) -> None:
    bag = write_tick_bag(tmp_path / "bag", log, contract, storage=storage)  # type: ignore[arg-type]
    before = _digest(bag)
    out = tmp_path / "ds"
    assert main(["replay", str(bag), "--out", str(out), "--set", "ground_truth=/sim_robot/ground_truth"]) == 0
    assert _digest(bag) == before  # never modified
    ds = load_dataset(out)
    assert [len(e) for e in ds.episodes] == [29, 29]  # two episodes of 30 ticks (the robot restarted at tick 30)
    recorded = [r for _, r in log.ticks]
    got_obs = np.concatenate([e.observations for e in ds.episodes])
    np.testing.assert_array_equal(got_obs, np.stack([r.observation for r in recorded]).astype(np.float32))
    seqs = np.concatenate([e.infos["seq"] for e in ds.episodes])
    np.testing.assert_array_equal(seqs, [r.seq for r in recorded])
    ep = ds.episodes[0]
    safe = np.stack([r.safe_targets for r in recorded[:29]])
    np.testing.assert_allclose(contract.act(ep.actions), safe, atol=1e-5)  # applied actions decode to safe targets
    assert ep.truncations[-1] and not ep.terminations.any()
    assert np.all(np.isfinite(ep.rewards)) and ep.rewards.sum() > 0
    assert "reward.tracking_lin_vel" in ep.infos  # ground truth pose -> base velocity terms are computed
    assert "reward.feet_air_time" in ep.infos and "reward.collision" in ep.infos  # the contacts topic -> contacts
    assert reward_terms(ds.metadata)[1] == {}  # the simulated robot's log rebuilds every weighted term
    assert (out / "plots" / "returns.png").stat().st_size > 1000 and (out / "report.md").is_file()
    assert "2 episodes, 58 transitions" in capsys.readouterr().out


def test_truncated_bag_names_file_and_recovers(tmp_path: Path, contract, log: SimLog,  # type: ignore[no-untyped-def]
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bag = write_tick_bag(tmp_path / "bag", log, contract)
    split = next(bag.glob("*.mcap"))
    data = split.read_bytes()
    split.write_bytes(data[: len(data) // 2])
    before = _digest(bag)
    out = tmp_path / "ds"
    assert main(["replay", str(bag), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and split.name in err and "--recover" in err
    assert not out.exists()
    assert main(["replay", str(bag), "--out", str(out), "--recover"]) == 0
    assert "recovered" in capsys.readouterr().out
    ds = load_dataset(out)
    n = sum(len(e) + 1 for e in ds.episodes)
    assert 0 < n < len(log.ticks)
    assert _digest(bag) == before


def test_corrupted_sqlite_bag_is_one_line_error(tmp_path: Path, contract, log: SimLog,  # type: ignore[no-untyped-def]
                                                capsys: pytest.CaptureFixture[str]) -> None:
    bag = write_tick_bag(tmp_path / "bag", log, contract, storage="sqlite3")
    db = next(bag.glob("*.db3"))
    db.write_bytes(b"garbage" * 100)
    out = tmp_path / "ds"
    assert main(["replay", str(bag), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and db.name in err
    assert not out.exists()


def test_raw_topic_bag_rebuilds_observations(tmp_path: Path, contract, log: SimLog,  # type: ignore[no-untyped-def]
                                             capsys: pytest.CaptureFixture[str]) -> None:
    renamed = [f"drv/{j}" for j in contract.joint_names]
    bag = write_raw_bag(tmp_path / "raw", log, contract, joint_names=renamed)
    bundle = tmp_path / "contract.json"
    contract.to_json(bundle)
    mapping = tmp_path / "topics.yaml"
    mapping.write_text("joint_names:\n" + "".join(f"  {j}: drv/{j}\n" for j in contract.joint_names)
                       + "command_joints: [" + ", ".join(renamed) + "]\n")
    out = tmp_path / "ds"
    assert main(["replay", str(bag), "--out", str(out), "--bundle", str(bundle), "--topics", str(mapping)]) == 0
    ds = load_dataset(out)
    # one continuous stream: the restart at tick 30 is invisible in raw topics (no sequence numbers)
    assert sum(len(e) + 1 for e in ds.episodes) == len(log.ticks)
    recorded = np.stack([r.observation for _, r in log.ticks[:30]])
    got = ds.episodes[0].observations[:30]
    np.testing.assert_allclose(got, recorded, atol=1e-5)

    # bad input: no mapping for renamed joints / a mapping naming joints the bag lacks / a bag without the topics
    out2 = tmp_path / "ds2"
    assert main(["replay", str(bag), "--out", str(out2), "--bundle", str(bundle)]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "lacks contract joints" in err and contract.joint_names[0] in err
    assert main(["replay", str(bag), "--out", str(out2), "--bundle", str(bundle), "--topics", str(mapping),
                 "--set", "imu=/imu/data"]) == 2
    err = capsys.readouterr().err.strip()
    assert "/imu/data" in err and len(err.splitlines()) == 1
    assert not out2.exists()


def test_dataset_from_another_robot_is_refused(tmp_path: Path, contract, log: SimLog,  # type: ignore[no-untyped-def]
                                               capsys: pytest.CaptureFixture[str]) -> None:
    bag = write_tick_bag(tmp_path / "bag", log, contract)
    out = tmp_path / "ds"
    assert main(["replay", str(bag), "--out", str(out), "--robot", "go1"]) == 2
    err = capsys.readouterr().err.strip()
    assert "'a1', not 'go1'" in err and not out.exists()
    shutil.rmtree(out, ignore_errors=True)
    assert main(["replay", str(bag), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["sysid", str(out), "--robot", "go1", "--out", str(tmp_path / "rand.yaml")]) == 2
    assert "not 'go1'" in capsys.readouterr().err
    assert not (tmp_path / "rand.yaml").exists()


def test_ground_truth_pose_is_sampled_when_the_state_was_measured() -> None:
    """A 200 Hz pose stream stamped on another clock (simulator time) and received in bursts, ticks logged 8 ms
    after their state was measured (as over ROS 2): the base pose and velocity are taken at the measurement time,
    the velocity from the poses' own stamps; sampling at the tick's log time is off by the lag."""
    from types import SimpleNamespace

    from robot_rl.replay import _base_from_pose, pose_stream

    def pose_at(t: np.ndarray) -> np.ndarray:
        return np.stack([0.5 * t, 0.05 * np.sin(t), 0.3 + 0.01 * np.sin(2 * np.pi * 3 * t)], axis=1)

    def vel_at(t: np.ndarray) -> np.ndarray:
        return np.stack([np.full_like(t, 0.5), 0.05 * np.cos(t), 0.06 * np.pi * np.cos(2 * np.pi * 3 * t)], axis=1)

    rng = np.random.default_rng(0)
    sim_t = np.arange(0, 400) * 0.005
    wall0 = 1.7e9
    # received 0.3 ms after publication, every fourth message late and in a burst with the next one
    recv = wall0 + sim_t + 3e-4 + np.where(np.arange(len(sim_t)) % 4 == 1, 0.0045, 0.0) \
        + 1e-4 * rng.random(len(sim_t))
    poses = []
    for t, r, p in zip(sim_t, recv, pose_at(sim_t)):
        stamp = SimpleNamespace(sec=int(t), nanosec=int(round((t - int(t)) * 1e9)))
        poses.append((int(r * 1e9), SimpleNamespace(header=SimpleNamespace(stamp=stamp), pose=SimpleNamespace(
            position=SimpleNamespace(x=p[0], y=p[1], z=p[2])))))
    state_t = 0.1 + np.arange(0, 80) * 0.02 + 0.0025  # states between pose samples
    log_ns = (wall0 + state_t + 0.008) * 1e9
    quats = np.tile([1.0, 0.0, 0.0, 0.0], (len(state_t), 1))
    pos, vel = _base_from_pose(log_ns, pose_stream(poses), quats, wall0 + state_t)
    assert np.abs(pos - pose_at(state_t)).max() < 5e-4  # the smallest receive delay (0.3 ms) remains
    assert np.abs(vel - vel_at(state_t)).max() < 0.01
    late, _ = _base_from_pose(log_ns, pose_stream(poses), quats)  # no state stamps: the tick's log time
    assert np.abs(late - pose_at(state_t))[:, 2].max() > 1e-3


def test_replayed_rewards_are_the_simulators_tick_for_tick(tmp_path: Path) -> None:
    """A log recorded from the simulator, with reward weights changed from the task defaults as a trained bundle
    records them (its task config): replay scores every transition with the task's own terms and those weights.
    Terms from the logged state and actions match the environment's to rounding; the base-velocity terms come from
    the ground-truth pose's finite differences, so they match to the accuracy of that derivative."""
    weights = ["rewards.orientation=-3.0", "rewards.action_rate=-0.2", "rewards.joint_limits=-25.0",
               "rewards.tracking_ang_vel=2.0", "rewards.tracking_lin_vel=3.0", "rewards.safety_intervention=-1.0"]
    log, scored, contract = record_a1_log(["randomization.enabled=false", *weights], 50)
    bag = write_tick_bag(tmp_path / "bag", log, contract)
    assert main(["replay", str(bag), "--out", str(tmp_path / "ds")]) == 0
    (ep,) = load_dataset(tmp_path / "ds").episodes
    assert len(ep) == 49
    sim = {name: np.array([s[name] for s in scored[:49]]) for name in scored[0]}
    exact = ["orientation", "action_rate", "joint_limits", "tracking_ang_vel", "ang_vel_xy", "base_height",
             "safety_intervention"]
    for name in exact:
        np.testing.assert_allclose(ep.infos[f"reward.{name}"][1:], sim[name], rtol=1e-6, atol=1e-12, err_msg=name)
    assert np.any(sim["safety_intervention"] < -1e-6) and np.any(sim["action_rate"] < -1e-3)  # the terms are live
    for name in ("tracking_lin_vel", "lin_vel_z"):
        np.testing.assert_allclose(ep.infos[f"reward.{name}"][1:], sim[name], rtol=0.05, atol=2e-3, err_msg=name)
