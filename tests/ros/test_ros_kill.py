"""Killed processes: a SIGKILLed recorder leaves a readable bag; a SIGKILLed policy node leaves the simulated robot
damping after its command timeout. Simulated robot (MuJoCo) + policy node + recorder, each in its own process."""

from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray
from rosbags.highlevel import AnyReader
from rosbags.typesys import Stores, get_typestore
from std_msgs.msg import Float64MultiArray

from robot_rl.bundle import load_bundle
from robot_rl.ros_nodes.qos import DEFAULTS, make_qos
from robot_rl.tick_record import TICK_TYPE, read_ticks


def _sim_mode(diags: list[DiagnosticArray]) -> str:
    modes = [kv.value for d in diags for s in d.status if "simulated robot" in s.name for kv in s.values
             if kv.key == "mode"]
    return modes[-1] if modes else ""


def test_kill_recorder_then_policy(probe, nodes, a1_bundle, tmp_path) -> None:  # type: ignore[no-untyped-def]
    contract = load_bundle(a1_bundle).contract
    ticks_live = probe.collect(Float64MultiArray, "/policy_node/tick", make_qos(*DEFAULTS["tick"]))
    diags = probe.collect(DiagnosticArray, "/diagnostics", 50)
    bag = tmp_path / "bag"
    recorder = nodes.start("recorder", "recorder", {"output": str(bag), "split_duration_s": 1.0})
    nodes.start("sim_robot", "sim_robot_node", {"command_joints": list(contract.joint_names),
                                                "command_rate_hz": contract.policy_rate_hz})
    policy = nodes.start("policy", "policy_node", {"bundle": str(a1_bundle), "autostart": True})
    probe.spin_until(lambda: len(ticks_live) >= 4 * contract.policy_rate_hz, 60.0, "4 s of ticks")
    probe.spin_until(lambda: _sim_mode(diags) == "active", 10.0, "simulated robot active")

    # 1. SIGKILL the recorder: every closed split is listed and readable, ticks contiguous, raw topics present
    recorder.kill()
    ticks = list(read_ticks(bag))
    assert len(ticks) >= 2 * contract.policy_rate_hz, f"only {len(ticks)} ticks survived"
    seqs = [t.seq for t in ticks]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "gap in recorded sequence numbers"
    assert seqs[0] == 0
    with AnyReader([bag], default_typestore=get_typestore(Stores.EMPTY)) as reader:  # self-describing bag
        topics = {c.topic: c.msgtype for c in reader.connections}
        assert topics["/robot_rl/ticks"] == TICK_TYPE
        assert topics["/joint_states"] == "sensor_msgs/msg/JointState"
        conn = next(c for c in reader.connections if c.topic == "/joint_states")
        _, _, raw = next(reader.messages(connections=[conn]))
        assert set(reader.deserialize(raw, conn.msgtype).name) == set(contract.joint_names)
    assert any(p.name.startswith(".active_") for p in bag.iterdir()), "the killed split stays out of the bag"

    # 2. SIGKILL the policy node: the simulated robot times out and damps
    policy.kill()
    probe.spin_until(lambda: _sim_mode(diags) == "timeout", 10.0, "simulated robot damping after command timeout")
    assert np.isfinite([t.safe_targets for t in ticks]).all()
