"""The policy node runs at the contract's rate with the contract's gains: the rate limiter's per-tick step is the
contract's rate limit times its policy period, so ticking faster would multiply the limit (500 Hz on a 50 Hz
contract: 20 rad/s became 200 rad/s). Real policy node process, real DDS on the test's localhost domain."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from std_msgs.msg import Float64MultiArray

from robot_rl.bundle import load_bundle
from robot_rl.ros_nodes.policy_node import STATE_TRIGGER_EARLY
from robot_rl.ros_nodes.qos import DEFAULTS, make_qos
from robot_rl.tick_record import STATUS, decode_labels, unpack

BUNDLE = Path(__file__).parent / "data" / "a1_walk"  # a 50 Hz contract, kp 20, kd 0.5


def _values(values: list[float]) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


@pytest.mark.parametrize("params, line", [
    ({"rate_hz": 500.0}, "parameter rate_hz 500 Hz does not match the contract's policy rate 50 Hz"),
    ({"kp": [30.0]}, "parameter kp [30] does not match the contract's kp {kp}"),
    ({"kd": [0.5] * 11 + [0.8]}, "parameter kd {bad_kd} does not match the contract's kd {kd}"),
], ids=["rate_hz", "kp", "kd"])
def test_a_rate_or_gains_other_than_the_contract_are_refused(nodes, params, line: str) -> None:  # type: ignore[no-untyped-def]
    """Failed before: the node ran at 500 Hz, and kp/kd were not parameters (ignored)."""
    c = load_bundle(BUNDLE).contract
    expected = line.format(kp=_values(c.kp), kd=_values(c.kd), bad_kd=_values(params.get("kd", [])))
    proc = nodes.start("policy", "policy_node", {"bundle": str(BUNDLE.resolve()), "autostart": True,
                                                 "first_state_timeout_s": 2.0, **params})
    assert proc.wait(60.0) == 3
    assert f"refusing to configure: {expected}" in proc.output(), proc.output()[-2000:]


def test_state_trigger_at_500_hz_moves_targets_at_the_contract_rate_limit(probe, nodes, robot_feed) -> None:  # type: ignore[no-untyped-def]
    """trigger:=state with JointStates every 2 ms on a 50 Hz contract: the targets ramp from the measured position
    toward the policy's at the contract's rate limit per second of the node's own tick times: at most one tick per
    period on average, and no two ticks closer than (1 - STATE_TRIGGER_EARLY) of a period (a JointState may start a
    period that much early, for a robot publishing at the policy rate with jitter). Failed before: one tick per
    JointState, each a full step (200 rad/s)."""
    c = load_bundle(BUNDLE).contract
    rate = next(f["max_rate"] for f in c.safety if f["type"] == "rate_limit")
    step = rate / c.policy_rate_hz
    q = np.asarray(c.default_joint_pos, float)
    q[[1, 4, 7, 10]] += 2.0  # thighs far from any target the policy can ask for (default +- 0.25 rad)
    feed = robot_feed(probe, c.joint_names, q)
    msgs = probe.collect(Float64MultiArray, "/policy_node/tick", make_qos(*DEFAULTS["tick"]))
    # declared gains equal to the contract's are accepted
    nodes.start("policy", "policy_node", {"bundle": str(BUNDLE.resolve()), "autostart": True, "trigger": "state",
                                          "kp": [float(v) for v in c.kp], "kd": [float(v) for v in c.kd]})

    def policy_ticks():  # type: ignore[no-untyped-def]
        ticks = [unpack(decode_labels(m.layout.dim[0].label), np.asarray(m.data)) for m in msgs]
        return [t for t in ticks if t.status == STATUS["policy"]]

    probe.spin_until(lambda: len(policy_ticks()) >= 12, 60.0, "12 policy ticks", every=feed.publish, period=0.002)
    ticks = policy_ticks()
    stamps = np.array([t.stamp for t in ticks])
    targets = np.array([t.safe_targets for t in ticks])
    assert np.abs(targets[0] - q).max() <= step + 1e-9
    moved = np.abs(targets[:, None, :] - targets[None, :, :]).max(axis=2)  # |q_j - q_i|, every pair of ticks
    allowed = rate * np.abs(stamps[:, None] - stamps[None, :]) / (1.0 - STATE_TRIGGER_EARLY) + 1e-6
    worst = np.unravel_index(np.argmax(moved - allowed), moved.shape)
    assert np.all(moved <= allowed), (
        f"targets moved {moved[worst]:.3f} rad in {abs(stamps[worst[0]] - stamps[worst[1]]) * 1e3:.1f} ms; the "
        f"contract's limit is {rate:g} rad/s")
    assert moved.max() > step  # the ramp was under way: the rate limiter, not the policy, set the pace
    assert len(ticks) - 1 <= (stamps[-1] - stamps[0]) * c.policy_rate_hz + 1  # one tick per period on average
