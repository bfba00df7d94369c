"""The `/estop` topic across processes: an e-stop button node with the default QoS (reliable, volatile, what
`ros2 topic pub` uses) and a latched one (transient-local, published before the node started) both stop the
policy; a publisher whose QoS cannot match is named in the node's log instead of being ignored silently."""

from __future__ import annotations

import numpy as np
from rclpy.qos import QoSProfile
from std_msgs.msg import Bool, Float64MultiArray
from std_srvs.srv import Trigger

from robot_rl.bundle import load_bundle
from robot_rl.ros_nodes.qos import DEFAULTS, make_qos
from robot_rl.tick_record import STATUS, decode_labels, unpack


def test_estop_topic_from_default_and_latched_publishers(probe, nodes, a1_bundle,  # type: ignore[no-untyped-def]
                                                         robot_feed) -> None:
    contract = load_bundle(a1_bundle).contract
    feed = robot_feed(probe, contract.joint_names, np.asarray(contract.default_joint_pos))
    ticks = probe.collect(Float64MultiArray, "/policy_node/tick", make_qos(*DEFAULTS["tick"]))

    def statuses() -> list[int]:
        return [int(unpack(decode_labels(m.layout.dim[0].label), np.asarray(m.data)).status) for m in ticks]

    def run_until(cond, what: str, every=None) -> None:  # type: ignore[no-untyped-def]
        def both() -> None:
            feed.publish()
            if every is not None:
                every()
        probe.spin_until(cond, 60.0, what, every=both, period=0.005)

    # 1. a latched e-stop asserted before the node exists: the node starts stopped. The robot's state only flows
    # once the node has discovered the e-stop publisher (the node cannot honour a publisher it has not discovered)
    latched = probe.publisher(Bool, "/estop", make_qos("reliable", "transient_local", 1))
    latched.publish(Bool(data=True))
    nodes.start("policy", "policy_node", {"bundle": str(a1_bundle), "autostart": True})
    probe.spin_until(lambda: latched.get_subscription_count() >= 2, 60.0, "the node's e-stop subscriptions")
    run_until(lambda: len(ticks) >= 10, "10 ticks")
    assert set(statuses()) == {STATUS["estop"]}, "a latched e-stop must hold from the first tick"
    probe.unpublish(Bool, "/estop")
    assert probe.call(Trigger, "/policy_node/reset", Trigger.Request()).success
    n = len(ticks)
    run_until(lambda: statuses()[n:].count(STATUS["policy"]) >= 10, "policy after reset")

    # 2. a default-QoS publisher (volatile, depth 10): its e-stop arrives
    button = probe.publisher(Bool, "/estop", QoSProfile(depth=10))
    n = len(ticks)
    run_until(lambda: STATUS["estop"] in statuses()[n:], "e-stop from a default-QoS publisher",
              every=lambda: button.publish(Bool(data=True)))
    m = len(ticks)
    run_until(lambda: len(ticks) > m + 10, "ticks under e-stop")
    assert set(statuses()[m:]) == {STATUS["estop"]}
    probe.unpublish(Bool, "/estop")

    # 3. a best-effort publisher can match no reliable subscription: the node says so in its log
    probe.publisher(Bool, "/estop", make_qos("best_effort", "volatile", 1))
    log = nodes.nodes["policy"]
    run_until(lambda: "incompatible QoS" in log.output(), "an incompatible-QoS log line")
    line = next(t for t in log.output().splitlines() if "incompatible QoS" in t)
    assert "/estop" in line and "RELIABILITY" in line
    assert log.alive()
