"""Message <-> RobotState conversion (joints by name), the tick record and its bag form. Real ROS message classes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from geometry_msgs.msg import Twist
from rclpy.serialization import deserialize_message, serialize_message
from sensor_msgs.msg import Imu, JointState

from robot_rl.ros_nodes.bagwriter import RotatingBagWriter
from robot_rl.ros_nodes.convert import JointStateReader, TwistCommand, fill_imu, fill_joint_state, new_state, read_imu
from robot_rl.state import RobotState
from robot_rl.tick_record import TICK_TYPE, TickPacker, read_ticks, to_bag_message, typestore, unpack
from tests.conftest import make_contract


def _wire(msg: object) -> object:
    """Through CDR, as a subscriber would receive it."""
    return deserialize_message(serialize_message(msg), type(msg))


def test_joint_state_mapped_by_name_not_position() -> None:
    names = ["j0", "j1", "j2", "j3"]
    rng = np.random.default_rng(0)
    reader = JointStateReader(names)
    q_true = np.array([0.1, -0.2, 0.3, -0.4])
    v_true = np.array([1.0, 2.0, 3.0, 4.0])
    for _ in range(5):
        order = rng.permutation(4)
        msg = JointState(name=["extra_gripper"] + [names[i] for i in order],
                         position=[9.9] + q_true[order].tolist(), velocity=[9.9] + v_true[order].tolist())
        pos, vel = np.zeros(4), np.zeros(4)
        assert reader.read(_wire(msg), pos, vel) is None
        np.testing.assert_array_equal(pos, q_true)
        np.testing.assert_array_equal(vel, v_true)


def test_joint_state_faults_are_reported_not_raised() -> None:
    reader = JointStateReader(["a", "b"])
    pos, vel = np.zeros(2), np.zeros(2)
    assert "lacks contract joints: b" in reader.read(JointState(name=["a"], position=[0.0], velocity=[0.0]), pos, vel)
    short = JointState(name=["a", "b"], position=[0.0], velocity=[0.0, 0.0])
    assert "mis-sized" in reader.read(short, pos, vel)
    nan = JointState(name=["b", "a"], position=[np.nan, 0.0], velocity=[0.0, 0.0])
    assert "non-finite" in reader.read(nan, pos, vel)
    dup = JointState(name=["a", "a"], position=[0.0, 0.0], velocity=[0.0, 0.0])
    assert "duplicate" in reader.read(dup, pos, vel)


def test_joint_effort_is_checked_and_absent_effort_stays_absent() -> None:
    """Effort flows into the tick log, replay's torque reward and system identification: a non-finite or mis-sized
    effort is a fault like a bad position; a robot that reports none is recorded as not measured, never as zeros."""
    reader = JointStateReader(["a", "b"])
    pos, vel, eff = np.zeros(2), np.zeros(2), np.full(2, 7.0)
    nan = JointState(name=["a", "b"], position=[0.1, 0.2], velocity=[0.0, 0.0], effort=[np.inf, 1.0])
    assert "non-finite" in reader.read(_wire(nan), pos, vel, eff)
    assert not pos.any() and np.all(eff == 7.0), "a faulty message must leave the state untouched"
    short = JointState(name=["a", "b"], position=[0.1, 0.2], velocity=[0.0, 0.0], effort=[1.0])
    assert "mis-sized" in reader.read(_wire(short), pos, vel, eff)
    ok = JointState(name=["b", "a"], position=[0.2, 0.1], velocity=[0.0, 0.0], effort=[2.0, 1.0])
    assert reader.read(_wire(ok), pos, vel, eff) is None
    np.testing.assert_array_equal(eff, [1.0, 2.0])
    none = JointState(name=["a", "b"], position=[0.1, 0.2], velocity=[0.0, 0.0])
    assert reader.read(_wire(none), pos, vel, eff) is None
    assert np.all(np.isnan(eff)), "absent effort must not keep the previous message's values or read as zeros"
    # the recorder's bag form keeps "not measured" apart from zero torque
    store = typestore()
    state = RobotState(joint_pos=pos, joint_vel=vel, base_quat=np.array([1.0, 0, 0, 0]), base_ang_vel=np.zeros(3),
                       base_lin_acc=np.zeros(3), joint_effort=eff)
    rec = unpack(*_packed(state))
    msg = store.deserialize_cdr(store.serialize_cdr(to_bag_message(store, rec, ["a", "b"]), TICK_TYPE), TICK_TYPE)
    assert len(msg.state.joint_effort) == 0


def _packed(state: RobotState) -> tuple[list[tuple[str, int]], np.ndarray]:
    packer = TickPacker(2, 0, 1, 2)
    for name in ("joint_pos", "joint_vel", "joint_effort", "base_quat", "base_ang_vel", "base_lin_acc"):
        packer.view(name)[:] = getattr(state, name)
    packer.pack({}, "")
    return packer.labels, packer.buffer


def test_state_round_trip_through_messages() -> None:
    """Simulated robot side writes JointState/Imu; policy side reads them back into the same RobotState."""
    rng = np.random.default_rng(1)
    q = rng.normal(size=4)
    quat = rng.normal(size=4)
    quat /= np.linalg.norm(quat)
    state = RobotState(joint_pos=q, joint_vel=rng.normal(size=4), base_quat=quat, base_ang_vel=rng.normal(size=3),
                       base_lin_acc=rng.normal(size=3), joint_effort=rng.normal(size=4))
    sim_order = ["j3", "j1", "j0", "j2"]  # simulator joint order differs from the contract's
    perm = [int(n[1]) for n in sim_order]
    sim_state = RobotState(joint_pos=q[perm], joint_vel=state.joint_vel[perm], base_quat=quat,
                           base_ang_vel=state.base_ang_vel, base_lin_acc=state.base_lin_acc,
                           joint_effort=state.joint_effort[perm])  # type: ignore[index]
    js, imu = JointState(), Imu()
    fill_joint_state(js, sim_order, sim_state)
    fill_imu(imu, sim_state)
    out = new_state(4)
    reader = JointStateReader(["j0", "j1", "j2", "j3"])
    assert reader.read(_wire(js), out.joint_pos, out.joint_vel, out.joint_effort) is None
    assert read_imu(_wire(imu), out.base_quat, out.base_ang_vel, out.base_lin_acc) is None
    for field in ("joint_pos", "joint_vel", "joint_effort", "base_quat", "base_ang_vel", "base_lin_acc"):
        np.testing.assert_allclose(getattr(out, field), getattr(state, field), err_msg=field)


def test_imu_faults() -> None:
    q, w, a = np.zeros(4), np.zeros(3), np.zeros(3)
    imu = Imu()
    imu.orientation.w = 1.0
    imu.orientation_covariance[0] = -1.0
    assert "no orientation" in read_imu(imu, q, w, a)
    imu = Imu()
    imu.orientation.w = 1.0
    imu.angular_velocity.x = float("inf")
    assert "non-finite" in read_imu(imu, q, w, a)
    imu = Imu()
    imu.orientation.w = 0.0  # all-zero orientation
    assert "unit quaternion" in read_imu(imu, q, w, a)


def test_twist_maps_contract_commands_and_clips() -> None:
    contract = make_contract().replace(command_names=["vx", "yaw_rate"], command_ranges=[(-1.0, 1.0), (-0.5, 0.5)])
    cmd = TwistCommand(contract)
    twist = Twist()
    twist.linear.x, twist.angular.z = 2.0, -0.25
    assert cmd.read(twist) is None
    np.testing.assert_allclose(cmd.value, [1.0, -0.25])
    with pytest.raises(Exception, match="no cmd_vel"):
        TwistCommand(contract.replace(command_names=["gait_freq"], command_ranges=[(0.0, 1.0)]))


def test_tick_record_round_trip_through_bag(tmp_path: Path) -> None:
    store = typestore()
    packer = TickPacker(num_joints=3, num_commands=2, obs_dim=7, act_dim=3)
    writer = RotatingBagWriter(tmp_path / "bag", store, split_duration_s=0.05)
    writer.add_topic("/ticks", TICK_TYPE)
    for seq in range(40):
        packer.view("seq")[0] = seq
        packer.view("stamp")[0] = 100.0 + 0.02 * seq
        packer.view("joint_pos")[:] = [seq, 2.0, 3.0]
        packer.view("base_quat")[:] = [1.0, 0.0, 0.0, 0.0]
        packer.view("observation")[:] = np.arange(7) * seq
        info = {"cbf/active": np.array([True, False, seq % 2 == 0]), "cbf/status": "optimal", "tank": 0.5 * seq}
        packer.pack(info, "stale" if seq == 7 else "")
        rec = unpack(packer.labels, packer.buffer)
        data = store.serialize_cdr(to_bag_message(store, rec, ["a", "b", "c"]), TICK_TYPE)
        writer.write("/ticks", int(rec.stamp * 1e9), data)
    writer.close()
    assert len(list((tmp_path / "bag").glob("*.mcap"))) > 1  # rotated
    ticks = list(read_ticks(tmp_path / "bag"))
    assert [t.seq for t in ticks] == list(range(40))
    t7 = ticks[7]
    assert t7.reason == "stale" and t7.safety["cbf/status"] == "optimal"
    np.testing.assert_array_equal(t7.safety["cbf/active"], [1.0, 0.0, 0.0])
    np.testing.assert_allclose(t7.state.joint_pos, [7.0, 2.0, 3.0])
    np.testing.assert_allclose(t7.observation, np.arange(7) * 7)


def test_bag_rotates_by_size_and_lists_only_closed_splits(tmp_path: Path) -> None:
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    store = typestore()
    writer = RotatingBagWriter(tmp_path / "bag", store, split_duration_s=3600.0, split_size_mb=0.002)
    writer.add_topic("/js", "sensor_msgs/msg/JointState")
    js = serialize_message(JointState(name=[f"joint_{i}" for i in range(12)], position=[0.0] * 12))
    for i in range(60):
        writer.write("/js", 1_000_000_000 + i * 5_000_000, js)
    splits = sorted(p.name for p in (tmp_path / "bag").glob("*.mcap"))
    assert len(splits) > 3  # ~700 bytes per message, 2 KB splits
    active = next((tmp_path / "bag").glob(".active_*"))  # the open split: not in the bag until closed
    with AnyReader([tmp_path / "bag"], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        before = sum(1 for _ in reader.messages())
    assert 0 < before < 60 and active.is_dir()
    writer.close()
    with AnyReader([tmp_path / "bag"], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        assert sum(1 for _ in reader.messages()) == 60
    assert not list((tmp_path / "bag").glob(".active_*"))
