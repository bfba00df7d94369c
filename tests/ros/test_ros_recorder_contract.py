"""The recorder keeps the contract (replay needs it) whatever the start order, and counts every tick it drops.

Real recorder process, real DDS on the test's localhost domain; the probe plays the policy node: a latched
(reliable, transient-local) contract published once, as the policy node does, and tick records.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from rclpy.duration import Duration
from std_msgs.msg import Float64MultiArray, MultiArrayDimension, String

from robot_rl.replay import CONTRACT_TOPIC, read_bag
from robot_rl.ros_nodes.procs import NodeGroup
from robot_rl.ros_nodes.qos import DEFAULTS, make_qos
from robot_rl.tick_record import TickPacker, encode_labels, read_ticks

CONTRACT = json.dumps({"joint_names": ["hip", "knee"]})
LATCHED = make_qos("reliable", "transient_local", 1)  # the policy node's ~/contract (qos.estop)


def _stop(probe, recorder) -> str:  # type: ignore[no-untyped-def]
    recorder.send(2)  # SIGINT
    probe.spin_until(lambda: not recorder.alive(), 15.0, "recorder exit")
    assert recorder.wait(1.0) == 0, recorder.output()[-2000:]
    return str(recorder.output())


@pytest.mark.parametrize("order", ["recorder_first", "publisher_first"])
def test_latched_contract_reaches_the_bag(probe, nodes: NodeGroup, tmp_path: Path, order: str) -> None:
    """recorder_first failed before the recorder waited for a publisher: its own contract subscription put the
    topic in the graph, so it subscribed at start with the record QoS (volatile), and the contract published once,
    before that reader matched, never reached the bag ('no contract recorded in the bag' in replay)."""
    bag = tmp_path / "bag"
    params = {"output": str(bag), "topics": [CONTRACT_TOPIC, "/other"], "discovery_period_s": 0.1}
    recorder = None
    if order == "recorder_first":
        recorder = nodes.start("recorder", "recorder", params)
        # started, and several discovery passes have run while only subscriptions exist on the topic
        probe.spin_until(lambda: "recording to" in recorder.output(), 30.0, "recorder started")
        probe.spin_for(0.5)
    pub = probe.publisher(String, CONTRACT_TOPIC, LATCHED)
    pub.publish(String(data=CONTRACT))  # once, at once: no reader has matched yet
    if recorder is None:
        probe.spin_for(0.5)
        recorder = nodes.start("recorder", "recorder", params)
    probe.spin_until(lambda: f"recording {CONTRACT_TOPIC}" in recorder.output(), 30.0, "contract subscribed")
    probe.spin_for(1.0)
    log = _stop(probe, recorder)
    assert read_bag(bag).contract_json == CONTRACT, log[-2000:]


def _tick_message(seq: int) -> Float64MultiArray:
    packer = TickPacker(2, 3, 4, 2)
    packer.view("seq")[0] = seq
    packer.view("stamp")[0] = 1.0 + 0.02 * seq
    packer.pack({}, "")
    size = int(packer.buffer.shape[0])
    msg = Float64MultiArray(data=packer.buffer.tolist())
    msg.layout.dim = [MultiArrayDimension(label=encode_labels(packer.labels), size=size, stride=size)]
    return msg


@pytest.mark.parametrize("contract_comes", [True, False], ids=["contract_late", "no_contract"])
def test_ticks_dropped_while_waiting_for_the_contract_are_counted(probe, nodes: NodeGroup, tmp_path: Path,
                                                                   contract_comes: bool) -> None:
    """Before: ticks beyond the held ones were dropped without a word, and ticks still held at close too."""
    bag = tmp_path / "bag"
    recorder = nodes.start("recorder", "recorder", {"output": str(bag), "topics": [CONTRACT_TOPIC],
                                                    "pending_ticks": 5, "discovery_period_s": 0.1})
    rel, dur, depth = DEFAULTS["tick"]
    ticks = probe.publisher(Float64MultiArray, "/policy_node/tick", make_qos(rel, dur, depth))
    probe.spin_until(lambda: ticks.get_subscription_count() >= 1, 30.0, "recorder subscribed to ticks")
    for seq in range(12):
        ticks.publish(_tick_message(seq))
        probe.spin_for(0.02)
    if contract_comes:
        probe.publisher(String, CONTRACT_TOPIC, LATCHED).publish(String(data=CONTRACT))
        probe.spin_until(lambda: f"recording {CONTRACT_TOPIC}" in recorder.output(), 30.0, "contract subscribed")
    assert ticks.wait_for_all_acked(Duration(seconds=10.0)), "ticks not acknowledged"
    probe.spin_for(1.0)
    log = _stop(probe, recorder)
    summary = re.search(r"bag closed: (\d+) ticks, .*dropped (\d+) ticks", log)
    assert summary, log[-2000:]
    written, dropped = int(summary.group(1)), int(summary.group(2))
    if contract_comes:
        assert (written, dropped) == (5, 7), log[-2000:]
        assert [int(t.seq) for t in read_ticks(bag)] == list(range(5))
        assert "dropping ticks" in log
    else:
        assert (written, dropped) == (0, 12), log[-2000:]
        assert "5 ticks held for it are not in the bag" in log
