"""Stopping the recorder (SIGINT from `robot-rl deploy`, Ctrl-C, SIGTERM from a supervisor) never loses a split.

The recorder rotates splits every 20 ms here, so a stop signal lands in or near a rotation every time; before the
recorder handled signals itself, a KeyboardInterrupt raised inside a rotation dropped a whole split (a 10 s deploy bag
held 250 of 500 ticks in CI). Real recorder process, real DDS, real MCAP files.
"""

from __future__ import annotations

import ast
import os
import re
import signal
from collections.abc import Callable
from pathlib import Path

import pytest
from rosbags.highlevel import AnyReader
from rosbags.rosbag2 import Writer
from rosbags.typesys import Stores, get_typestore
from std_msgs.msg import Int64

from robot_rl.ros_nodes.bagwriter import RotatingBagWriter
from robot_rl.ros_nodes.procs import NodeGroup
from robot_rl.tick_record import typestore

TOPIC = "/counter"


def _bag_values(bag: Path) -> list[int]:
    with AnyReader([bag], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        return [reader.deserialize(raw, c.msgtype).data for c, _, raw in reader.messages()]


def _recorded_count(log: str) -> int:
    match = re.search(r"bag closed: \d+ ticks, raw (\{.*\})", log)
    assert match, f"recorder did not report closing its bag:\n{log[-2000:]}"
    return int(ast.literal_eval(match.group(1)).get(TOPIC, 0))


def _record_then_stop(probe, nodes: NodeGroup, bag: Path, label: str, sig: int,  # type: ignore[no-untyped-def]
                      publish: Callable[[], None]) -> None:
    recorder = nodes.start(label, "recorder", {
        "output": str(bag), "topics": [TOPIC], "split_duration_s": 0.02, "discovery_period_s": 0.1})
    probe.spin_until(lambda: f"recording {TOPIC}" in recorder.output(), 30.0, "recorder subscribed",
                     every=publish, period=0.001)
    # about a second of messages, then the signal while messages keep arriving
    probe.spin_until(lambda: len(list(bag.glob("*.mcap"))) >= 20, 30.0, "20 closed splits",
                     every=publish, period=0.001)
    recorder.send(sig)
    probe.spin_until(lambda: not recorder.alive(), 15.0, "recorder exit", every=publish, period=0.001)
    assert recorder.wait(1.0) == 0, recorder.output()[-2000:]

    assert not list(bag.glob(".active_*")), "a split was left unfinished"
    values = _bag_values(bag)
    assert values, "nothing recorded"
    assert len(values) == _recorded_count(recorder.output()), "the bag holds fewer messages than were recorded"
    # reliable QoS on localhost: every message between the first and the last recorded one is in the bag
    assert sorted(values) == list(range(min(values), max(values) + 1)), "a gap: a split was lost"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_stop_signal_during_rotation_keeps_every_split(probe, nodes, tmp_path, sig) -> None:  # type: ignore[no-untyped-def]
    pub = probe.publisher(Int64, TOPIC, 100)
    counter = iter(range(10**9))

    def publish() -> None:
        pub.publish(Int64(data=next(counter)))

    for round_ in range(3):
        _record_then_stop(probe, nodes, tmp_path / f"bag{round_}", f"recorder{round_}", sig, publish)


def test_writer_in_a_script_finishes_a_split_before_ctrl_c_interrupts(tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """RotatingBagWriter used from a user's own script (Python's default SIGINT: KeyboardInterrupt): Ctrl-C while
    a split is being finalized interrupts the script after the split is complete, never halfway through it."""
    original_close = Writer.close

    def close_after_ctrl_c(self: Writer) -> None:
        os.kill(os.getpid(), signal.SIGINT)  # Ctrl-C arrives just as the split starts closing
        original_close(self)

    monkeypatch.setattr(Writer, "close", close_after_ctrl_c)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        store = typestore()
        writer = RotatingBagWriter(tmp_path / "bag", store, split_duration_s=1.0)
        writer.add_topic(TOPIC, "std_msgs/msg/Int64")
        written, interrupts = [], 0
        for i in range(30):  # a new split at i = 10 and 20
            data = store.serialize_cdr(store.types["std_msgs/msg/Int64"](data=i), "std_msgs/msg/Int64")
            try:
                writer.write(TOPIC, 10**18 + i * 100_000_000, data)
                written.append(i)
            except KeyboardInterrupt:
                interrupts += 1
        with pytest.raises(KeyboardInterrupt):
            writer.close()
    finally:
        signal.signal(signal.SIGINT, previous)
    assert interrupts == 2
    assert not list((tmp_path / "bag").glob(".active_*"))
    assert len(list((tmp_path / "bag").glob("*.mcap"))) == 3
    assert _bag_values(tmp_path / "bag") == written
