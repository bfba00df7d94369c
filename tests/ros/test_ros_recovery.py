"""Leaving a backup stretch: the first policy targets after a fault start from the robot's measured state, not from
the targets of before the fault. During a stale stretch the robot moved (it was damping, or pushed); the rate
limiter must limit the first new target around where the joints are now."""

from __future__ import annotations

import numpy as np
from std_msgs.msg import Float64MultiArray

from robot_rl.bundle import load_bundle
from robot_rl.ros_nodes.qos import DEFAULTS, make_qos
from robot_rl.tick_record import STATUS, decode_labels, unpack


def test_first_targets_after_a_stale_stretch_start_from_the_measured_state(probe, nodes, a1_bundle,  # type: ignore[no-untyped-def]
                                                                          robot_feed) -> None:
    contract = load_bundle(a1_bundle).contract
    rate = next(f["max_rate"] for f in contract.safety if f["type"] == "rate_limit")
    step = rate / contract.policy_rate_hz  # the largest target change per tick
    q_before = np.asarray(contract.default_joint_pos)
    feed = robot_feed(probe, contract.joint_names, q_before)
    msgs = probe.collect(Float64MultiArray, "/policy_node/tick", make_qos(*DEFAULTS["tick"]))
    nodes.start("policy", "policy_node", {"bundle": str(a1_bundle), "autostart": True})

    def ticks():  # type: ignore[no-untyped-def]
        return [unpack(decode_labels(m.layout.dim[0].label), np.asarray(m.data)) for m in msgs]

    def run_until(cond, what: str) -> None:  # type: ignore[no-untyped-def]
        probe.spin_until(cond, 60.0, what, every=feed.publish, period=0.005)

    run_until(lambda: sum(t.status == STATUS["policy"] for t in ticks()) >= 20, "20 policy ticks")
    feed.enabled = False
    probe.spin_until(lambda: sum(t.status == STATUS["stale"] for t in ticks()) >= 5, 10.0, "stale ticks")
    thighs = np.array([1, 4, 7, 10])
    q_after = q_before.copy()
    q_after[thighs] += 1.0  # well beyond two rate-limit steps from any target near the old pose
    feed.positions = q_after
    feed.enabled = True
    n = len(msgs)
    run_until(lambda: any(t.status == STATUS["policy"] for t in ticks()[n:]), "policy after the fault")

    first = next(t for t in ticks()[n:] if t.status == STATUS["policy"])
    np.testing.assert_allclose(first.state.joint_pos, q_after)
    assert np.all(np.abs(first.safe_targets - q_after) <= step + 1e-9), (
        f"first target after the fault is {np.abs(first.safe_targets - q_after).max():.3f} rad from the measured "
        f"position; the rate limit allows {step:.3f}")
