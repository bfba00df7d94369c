"""Fault injection against the policy node over real DDS: silence, NaN, mis-sized messages and the e-stop.

The test process is the robot (JointState + Imu at 200 Hz, joints in reversed order) and the operator. Every tick's
record (`/policy_node/tick`) says what the node did and why, so the checks hold on any machine load: they are
about which action each tick sent, never about wall-clock durations.
"""

from __future__ import annotations

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from std_msgs.msg import Float64MultiArray
from std_srvs.srv import Trigger

from robot_rl.bundle import load_bundle
from robot_rl.ros_nodes.qos import DEFAULTS, make_qos
from robot_rl.tick_record import STATUS, TickRecord, decode_labels, unpack

CMD = "/forward_position_controller/commands"


def _ticks(msgs: list[Float64MultiArray]) -> list[TickRecord]:
    return [unpack(decode_labels(m.layout.dim[0].label), np.asarray(m.data)) for m in msgs]


def test_watchdog_backup_on_silence_nan_wrong_length_and_estop(probe, nodes, a1_bundle,  # type: ignore[no-untyped-def]
                                                               robot_feed) -> None:
    contract = load_bundle(a1_bundle).contract
    period = 1.0 / contract.policy_rate_hz
    q_robot = np.asarray(contract.default_joint_pos) + 0.1  # so that damping (hold q) differs from policy targets
    feed = robot_feed(probe, contract.joint_names[::-1], q_robot[::-1])
    tick_msgs = probe.collect(Float64MultiArray, "/policy_node/tick", make_qos(*DEFAULTS["tick"]))
    commands = probe.collect(Float64MultiArray, CMD, make_qos("reliable", "volatile", 50))
    diags = probe.collect(DiagnosticArray, "/diagnostics", 50)
    nodes.start("policy", "policy_node", {"bundle": str(a1_bundle), "autostart": True})

    def run_until(cond, what: str, timeout: float = 30.0) -> None:  # type: ignore[no-untyped-def]
        probe.spin_until(cond, timeout, what, every=feed.publish, period=0.005)

    def statuses() -> list[int]:
        return [t.status for t in _ticks(tick_msgs)]

    def count(status: str) -> int:
        return statuses().count(STATUS[status])

    run_until(lambda: count("policy") >= 20, "20 policy ticks")

    # 1. the robot goes silent: backup within the staleness limit, never a policy tick on a stale state
    feed.enabled = False
    probe.spin_until(lambda: count("stale") >= 5, 10.0, "stale ticks")
    feed.enabled = True
    n_stale_phase = len(tick_msgs)
    run_until(lambda: count("policy") >= 30 and len(tick_msgs) > n_stale_phase + 5, "policy resumes")

    # 2. NaN in a joint position, then a mis-sized message: backup, diagnostic, no crash
    nan_pos = q_robot[::-1].copy()
    nan_pos[3] = np.nan
    feed.override = {"position": nan_pos.tolist()}
    run_until(lambda: count("invalid") >= 5, "invalid (NaN) ticks")
    feed.override = {"position": q_robot[::-1][:-1].tolist()}
    run_until(lambda: any("mis-sized" in t.reason for t in _ticks(tick_msgs)), "invalid (mis-sized) ticks")
    feed.override = {}
    n = len(tick_msgs)
    run_until(lambda: len(tick_msgs) > n + 10 and statuses()[-1] == STATUS["policy"], "policy after bad messages")

    # 3. e-stop: no policy command until reset
    assert probe.call(Trigger, "/policy_node/estop", Trigger.Request()).success
    n_estop = len(tick_msgs)
    run_until(lambda: len(tick_msgs) > n_estop + 25, "ticks under e-stop")
    assert all(s == STATUS["estop"] for s in statuses()[n_estop + 2:]), "policy tick while e-stopped"
    assert probe.call(Trigger, "/policy_node/reset", Trigger.Request()).success
    n_reset = len(tick_msgs)
    run_until(lambda: STATUS["policy"] in statuses()[n_reset:], "policy after e-stop reset")
    probe.spin_for(0.3)
    assert nodes.nodes["policy"].alive(), "the policy node must survive every fault"

    ticks = _ticks(tick_msgs)
    seqs = [t.seq for t in ticks]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), "tick sequence has gaps"
    for t in ticks:
        if t.status == STATUS["policy"]:
            assert t.state_age <= 3 * period, f"tick {t.seq} ran the policy on a {t.state_age * 1e3:.0f} ms old state"
            assert np.all(np.isfinite(t.observation))
        else:
            # backup = the chain's damping action: hold the last valid measured position (torque = -kd * qdot)
            np.testing.assert_allclose(t.safe_targets, q_robot, atol=1e-9, err_msg=f"tick {t.seq} {t.status_name}")
            assert t.reason, f"backup tick {t.seq} without a reason"
    assert {t.status_name for t in ticks} == {"policy", "stale", "invalid", "estop"}
    reasons = " ".join(t.reason for t in ticks)
    assert "non-finite" in reasons and "mis-sized" in reasons and "old" in reasons and "e-stop" in reasons
    # what was published is what the ticks say (contract joint order, never a NaN)
    data = np.array([c.data for c in commands])
    assert data.shape[1] == contract.num_joints and np.all(np.isfinite(data))
    assert any(np.allclose(row, q_robot) for row in data) and any(not np.allclose(row, q_robot) for row in data)
    warn = [s for d in diags for s in d.status if "policy loop" in s.name and s.level == DiagnosticStatus.WARN]
    assert any("non-finite" in s.message for s in warn) and any("estop" in s.message for s in warn)
