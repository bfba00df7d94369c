"""Damaged rosbag2 bags as a user meets them: `robot-rl replay BAG --out D [--recover]` on multi-split MCAP bags written
by the recorder's rotating writer (robot_rl.ros_nodes.bagwriter), with one split truncated, one split's chunk
corrupted, or metadata.yaml missing. The note names exactly the damaged files, and none when none is."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from robot_rl.cli import main
from robot_rl.dataset import load_dataset
from robot_rl.logs import TICK_TOPIC, SimLog
from robot_rl.ros_nodes.bagwriter import RotatingBagWriter
from robot_rl.tick_record import TICK_TYPE, to_bag_message, typestore

CONTRACT_TOPIC = "/policy_node/contract"


def _split_bag(path: Path, log: SimLog, contract) -> list[Path]:  # type: ignore[no-untyped-def]
    """A bag as the recorder writes it: a new split every 0.1 s of log time (12 splits for 60 ticks at 50 Hz)."""
    store = typestore()
    writer = RotatingBagWriter(path, store, split_duration_s=0.1)
    writer.add_topic(CONTRACT_TOPIC, "std_msgs/msg/String")
    writer.add_topic(TICK_TOPIC, TICK_TYPE)
    text = store.types["std_msgs/msg/String"](data=contract.to_json())
    writer.write(CONTRACT_TOPIC, log.ticks[0][0], store.serialize_cdr(text, "std_msgs/msg/String"))
    for t_ns, rec in log.ticks:
        writer.write(TICK_TOPIC, t_ns, store.serialize_cdr(to_bag_message(store, rec, contract.joint_names), TICK_TYPE))
    writer.close()
    splits = [path / f"{path.name}_{i}.mcap" for i in range(writer.index)]
    assert len(splits) > 3 and all(s.is_file() for s in splits)
    return splits


def _ticks(out: Path) -> int:
    return sum(len(e) + 1 for e in load_dataset(out).episodes)


def test_truncated_split_is_the_one_named(tmp_path: Path, contract, log: SimLog,  # type: ignore[no-untyped-def]
                                          capsys: pytest.CaptureFixture[str]) -> None:
    bag = tmp_path / "bag"
    splits = _split_bag(bag, log, contract)
    damaged = splits[1]
    data = damaged.read_bytes()
    damaged.write_bytes(data[: len(data) // 2])
    assert main(["replay", str(bag), "--out", str(tmp_path / "ds")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and damaged.name in err and "--recover" in err
    others = [s.name for s in splits if s != damaged]
    assert not any(f"{name}" in err.replace(damaged.name, "") for name in others)
    assert not (tmp_path / "ds").exists()

    assert main(["replay", str(bag), "--out", str(tmp_path / "ds"), "--recover"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "recovered" in line]
    assert len(notes) == 1 and f"{damaged} is damaged" in notes[0]
    assert notes[0].count("is damaged") == 1  # the intact splits are not named
    assert 0 < len(log.ticks) - _ticks(tmp_path / "ds") <= 5  # only the cut-off ticks of one split are lost


def test_every_damaged_split_is_named_and_only_those(tmp_path: Path, contract, log: SimLog,  # type: ignore[no-untyped-def]
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    bag = tmp_path / "bag"
    splits = _split_bag(bag, log, contract)
    cut, unfinished = splits[2], splits[5]
    cut.write_bytes(cut.read_bytes()[:600])  # inside the chunk of messages
    unfinished.write_bytes(unfinished.read_bytes()[:-100])  # the footer and the end of the summary are gone
    assert main(["replay", str(bag), "--out", str(tmp_path / "ds"), "--recover"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "recovered" in line]
    assert len(notes) == 1 and notes[0].count("is damaged") == 2
    assert f"{cut} is damaged (truncated" in notes[0] and f"{unfinished} is damaged (truncated" in notes[0]
    # the cut split loses the ticks after byte 600; the other only its summary: all its messages still read
    assert 0 < len(log.ticks) - _ticks(tmp_path / "ds") <= 5


def test_chunk_failing_its_crc_is_skipped(tmp_path: Path) -> None:
    """The recorder's writer (rosbags) leaves chunk CRCs at 0; files written with CRCs (the `mcap` writer, the
    rosbag2 C++ recorder) have them checked: a chunk that fails is skipped, the file's other chunks still read."""
    from mcap.writer import CompressionType, Writer

    from robot_rl.bag_recovery import mcap_damage, read_mcap

    path = tmp_path / "crc.mcap"
    with path.open("wb") as fh:
        writer = Writer(fh, chunk_size=200, compression=CompressionType.NONE)
        writer.start()
        schema = writer.register_schema("std_msgs/msg/String", "ros2msg", b"string data")
        channel = writer.register_channel("/text", "cdr", schema)
        store = typestore()
        for i in range(20):
            msg = store.serialize_cdr(store.types["std_msgs/msg/String"](data=f"message {i:02d} " + "x" * 40),
                                      "std_msgs/msg/String")
            writer.add_message(channel, log_time=i, data=bytes(msg), publish_time=i)
        writer.finish()
    assert mcap_damage(path) == ""
    data = bytearray(path.read_bytes())
    at = data.index(b"message 07")
    data[at + 9] ^= 0x01  # "message 07" becomes "message 06": still decodes, only the CRC tells
    path.write_bytes(bytes(data))
    assert "chunk at byte" in mcap_damage(path) and "crc" in mcap_damage(path)
    got: list[str] = []
    note = read_mcap(path, lambda topic, msgtype: True, lambda t, m, ns, msg: got.append(msg.data[:10]), store,
                     recover=True)
    assert f"{path} is damaged (chunk at byte" in note
    assert "message 07" not in got and {"message 00", "message 19"} <= set(got) and len(got) < 20


def test_missing_metadata_is_not_called_damage(tmp_path: Path, contract, log: SimLog,  # type: ignore[no-untyped-def]
                                               capsys: pytest.CaptureFixture[str]) -> None:
    whole = tmp_path / "whole"
    _split_bag(whole, log, contract)
    assert main(["replay", str(whole), "--out", str(tmp_path / "ds_whole")]) == 0
    bag = tmp_path / "bag"
    _split_bag(bag, log, contract)
    (bag / "metadata.yaml").unlink()
    capsys.readouterr()
    assert main(["replay", str(bag), "--out", str(tmp_path / "ds"), "--recover"]) == 0
    notes = [line for line in capsys.readouterr().out.splitlines() if "recovered" in line]
    assert len(notes) == 1 and "metadata.yaml" in notes[0] and "damaged" not in notes[0]
    got, want = load_dataset(tmp_path / "ds"), load_dataset(tmp_path / "ds_whole")
    assert [len(e) for e in got.episodes] == [len(e) for e in want.episodes] == [29, 29]
    np.testing.assert_array_equal(np.concatenate([e.observations for e in got.episodes]),
                                  np.concatenate([e.observations for e in want.episodes]))


def test_single_intact_mcap_file_reads_without_recover(tmp_path: Path, contract, log: SimLog,  # type: ignore[no-untyped-def]
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    from robot_rl.logs import write_tick_bag

    bag = write_tick_bag(tmp_path / "bag", log, contract)
    (split,) = bag.glob("*.mcap")
    assert main(["replay", str(split), "--out", str(tmp_path / "ds")]) == 0
    assert "recovered" not in capsys.readouterr().out
    assert _ticks(tmp_path / "ds") == len(log.ticks)


def test_damaged_sqlite_bag_counts_what_it_lost(tmp_path: Path, contract, log: SimLog,  # type: ignore[no-untyped-def]
                                                capsys: pytest.CaptureFixture[str]) -> None:
    """A SQLite3 bag with one page overwritten: the rows before it are converted, and the note says how many of the
    bag's messages were read and where reading stopped (before: 'converted the rows that still read', no count)."""
    import re

    import yaml

    from robot_rl.logs import write_tick_bag

    bag = write_tick_bag(tmp_path / "bag", log, contract, storage="sqlite3")
    (db,) = bag.glob("*.db3")
    data = bytearray(db.read_bytes())
    at = int(len(data) * 0.6) // 4096 * 4096
    data[at:at + 4096] = b"\xff" * 4096  # one page of the messages table
    db.write_bytes(bytes(data))
    assert main(["replay", str(bag), "--out", str(tmp_path / "ds"), "--recover"]) == 0
    (note,) = [line for line in capsys.readouterr().out.splitlines() if "recovered" in line]
    assert f"{db} is damaged" in note and "reading stopped after row id" in note
    found = re.search(r"(\d+) of (\d+) rows read", note)
    assert found is not None
    read, total = int(found[1]), int(found[2])
    info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
    assert total == info["message_count"] >= 2 * len(log.ticks) + 1  # ticks, poses, contacts and the contract
    assert 0 < read < total
    assert 0 < _ticks(tmp_path / "ds") < len(log.ticks)


def test_schema_that_does_not_parse_is_named_and_its_messages_counted(tmp_path: Path) -> None:
    from mcap.writer import CompressionType, Writer

    from robot_rl.bag_recovery import read_mcap

    path = tmp_path / "odd.mcap"
    with path.open("wb") as fh:
        writer = Writer(fh, compression=CompressionType.NONE)
        writer.start()
        good = writer.register_channel("/text", "cdr", writer.register_schema("std_msgs/msg/String", "ros2msg",
                                                                              b"string data"))
        odd = writer.register_channel("/odd", "cdr", writer.register_schema("my_pkg/msg/Odd", "ros2msg",
                                                                            b"%%% not a message definition"))
        skipped = writer.register_channel("/unread", "cdr", writer.register_schema("my_pkg/msg/Unread", "ros2msg",
                                                                                   b"neither ]["))
        store = typestore()
        text = bytes(store.serialize_cdr(store.types["std_msgs/msg/String"](data="hi"), "std_msgs/msg/String"))
        for i in range(3):
            writer.add_message(good, log_time=i, data=text, publish_time=i)
            writer.add_message(odd, log_time=i, data=b"\x00\x01", publish_time=i)
            writer.add_message(skipped, log_time=i, data=b"\x00\x01", publish_time=i)
        writer.finish()
    got: list[str] = []
    note = read_mcap(path, lambda topic, msgtype: topic != "/unread", lambda t, m, ns, msg: got.append(t), store,
                     recover=True)
    assert got == ["/text"] * 3
    assert "schemas that do not parse: my_pkg/msg/Odd" in note and "3 on /odd" in note
    assert "Unread" not in note and "/unread" not in note  # not wanted: nothing lost
