"""Policy node lifecycle over real DDS: every transition driven through the lifecycle services from another process,
and refusal to configure (hence to activate) on bad input with a log line and an ERROR diagnostic."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
from lifecycle_msgs.msg import State, Transition
from lifecycle_msgs.srv import ChangeState, GetState
from rcl_interfaces.msg import Parameter, ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
from std_msgs.msg import Float64MultiArray, String
from trajectory_msgs.msg import JointTrajectory

from robot_rl.bundle import load_bundle
from robot_rl.ros_nodes.qos import make_qos

NODE = "/policy_node"
CMD = "/forward_position_controller/commands"


def _transition(probe, transition: int) -> bool:  # type: ignore[no-untyped-def]
    return bool(probe.call(ChangeState, f"{NODE}/change_state",
                           ChangeState.Request(transition=Transition(id=transition)), timeout=30.0).success)


def _state(probe) -> int:  # type: ignore[no-untyped-def]
    return int(probe.call(GetState, f"{NODE}/get_state", GetState.Request()).current_state.id)


def _set_string(probe, name: str, value: str) -> None:  # type: ignore[no-untyped-def]
    param = Parameter(name=name, value=ParameterValue(type=ParameterType.PARAMETER_STRING, string_value=value))
    result = probe.call(SetParameters, f"{NODE}/set_parameters", SetParameters.Request(parameters=[param]))
    assert result.results[0].successful


def _start_policy(nodes, bundle: Path) -> None:  # type: ignore[no-untyped-def]
    nodes.start("policy", "policy_node", {"bundle": str(bundle), "first_state_timeout_s": 2.0})


def test_every_lifecycle_transition(probe, nodes, a1_bundle, robot_feed) -> None:  # type: ignore[no-untyped-def]
    contract = load_bundle(a1_bundle).contract
    feed = robot_feed(probe, contract.joint_names[::-1], np.asarray(contract.default_joint_pos)[::-1])
    commands = probe.collect(Float64MultiArray, CMD, make_qos("reliable", "volatile", 10))
    _start_policy(nodes, a1_bundle)
    probe.spin_until(lambda: probe.node.count_publishers("/diagnostics") > 0, 30.0, "policy node start")
    assert _state(probe) == State.PRIMARY_STATE_UNCONFIGURED

    def with_feed(transition: int) -> bool:
        future = probe.node.create_client(ChangeState, f"{NODE}/change_state").call_async(
            ChangeState.Request(transition=Transition(id=transition)))
        probe.spin_until(future.done, 30.0, f"transition {transition}", every=feed.publish)
        return bool(future.result().success)

    assert with_feed(Transition.TRANSITION_CONFIGURE)
    assert _state(probe) == State.PRIMARY_STATE_INACTIVE
    probe.spin_for(0.5)
    assert commands == [], "an inactive node must not publish commands"

    assert with_feed(Transition.TRANSITION_ACTIVATE)
    assert _state(probe) == State.PRIMARY_STATE_ACTIVE
    probe.spin_until(lambda: len(commands) >= 10, 10.0, "commands", every=feed.publish)
    assert all(len(c.data) == contract.num_joints for c in commands)

    assert with_feed(Transition.TRANSITION_DEACTIVATE)
    assert _state(probe) == State.PRIMARY_STATE_INACTIVE
    probe.spin_for(0.2)
    commands.clear()
    probe.spin_for(0.5)
    assert commands == []

    assert with_feed(Transition.TRANSITION_CLEANUP)
    assert _state(probe) == State.PRIMARY_STATE_UNCONFIGURED
    assert with_feed(Transition.TRANSITION_CONFIGURE)
    assert with_feed(Transition.TRANSITION_ACTIVATE)
    probe.spin_until(lambda: len(commands) >= 5, 10.0, "commands after re-activation", every=feed.publish)
    assert with_feed(Transition.TRANSITION_ACTIVE_SHUTDOWN)
    assert _state(probe) == State.PRIMARY_STATE_FINALIZED


def test_refuses_bad_bundle_wrong_types_and_missing_joints(probe, nodes, a1_bundle, robot_feed,  # type: ignore[no-untyped-def]
                                                          tmp_path) -> None:
    contract = load_bundle(a1_bundle).contract
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    commands = probe.collect(Float64MultiArray, CMD, make_qos("reliable", "volatile", 10))
    broken = tmp_path / "broken_bundle"
    broken.mkdir()
    (broken / "contract.json").write_text("{not json")
    _start_policy(nodes, broken)
    probe.spin_until(lambda: probe.node.count_publishers("/diagnostics") > 0, 30.0, "policy node start")

    def refused(fragment: str) -> None:
        assert _state(probe) == State.PRIMARY_STATE_UNCONFIGURED
        probe.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR and fragment in s.message
                                     for d in diags for s in d.status), 5.0, f"ERROR diagnostic '{fragment}'")

    # 1. unreadable bundle
    assert not _transition(probe, Transition.TRANSITION_CONFIGURE)
    refused("not valid JSON")

    # 2. a topic with the wrong message type
    _set_string(probe, "bundle", str(a1_bundle))
    wrong = probe.publisher(String, "/imu", make_qos("best_effort", "volatile", 5))
    feed = robot_feed(probe, contract.joint_names, contract.default_joint_pos, imu_topic="/imu_unused")
    probe.spin_until(lambda: probe.node.count_publishers("/imu") > 0, 5.0, "wrong-type publisher")
    future = probe.node.create_client(ChangeState, f"{NODE}/change_state").call_async(
        ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
    probe.spin_until(future.done, 30.0, "configure", every=lambda: (feed.publish(), wrong.publish(String(data="x"))))
    assert not future.result().success
    refused("carries std_msgs/msg/String, expected sensor_msgs/msg/Imu")
    probe.unpublish(String, "/imu")
    probe.spin_until(lambda: "std_msgs/msg/String" not in dict(probe.node.get_topic_names_and_types()).get("/imu", []),
                     5.0, "wrong-type publisher gone")

    # 3. /joint_states without a contract joint
    feed = robot_feed(probe, contract.joint_names[1:], contract.default_joint_pos[1:], imu_topic="/imu")
    future = probe.node.create_client(ChangeState, f"{NODE}/change_state").call_async(
        ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
    probe.spin_until(future.done, 30.0, "configure", every=feed.publish)
    assert not future.result().success
    refused(f"lacks contract joints: {contract.joint_names[0]}")

    assert commands == [], "a refused node must never publish a command"
    nodes.stop_all()
    log = nodes.nodes["policy"].output()
    assert "refusing to configure" in log and "not valid JSON" in log and contract.joint_names[0] in log


def test_trajectory_output_mode(probe, nodes, a1_bundle, robot_feed) -> None:  # type: ignore[no-untyped-def]
    """output_mode:=trajectory: one-point JointTrajectory with the contract's joint names, one policy period ahead."""
    contract = load_bundle(a1_bundle).contract
    feed = robot_feed(probe, contract.joint_names[::-1], np.asarray(contract.default_joint_pos)[::-1])
    trajs = probe.collect(JointTrajectory, "/joint_trajectory_controller/joint_trajectory",
                          make_qos("reliable", "volatile", 10))
    commands = probe.collect(Float64MultiArray, CMD, make_qos("reliable", "volatile", 10))
    nodes.start("policy", "policy_node", {"bundle": str(a1_bundle), "autostart": True, "output_mode": "trajectory"})
    probe.spin_until(lambda: len(trajs) >= 5, 60.0, "trajectories", every=feed.publish)
    msg = trajs[-1]
    assert list(msg.joint_names) == contract.joint_names and len(msg.points) == 1
    assert len(msg.points[0].positions) == contract.num_joints and np.all(np.isfinite(msg.points[0].positions))
    dt = msg.points[0].time_from_start
    assert abs(dt.sec + dt.nanosec * 1e-9 - 1.0 / contract.policy_rate_hz) < 1e-6
    assert commands == []


def test_refuses_a_bundle_whose_control_step_cannot_run(probe, nodes, a1_bundle, robot_feed,  # type: ignore[no-untyped-def]
                                                        tmp_path) -> None:
    """An operational-space (`ee_delta`) bundle needs the robot model to decode its action: the node refuses it at
    configure, naming why, instead of configuring, activating and failing on the first tick."""
    import torch

    from robot_rl.bundle import export_bundle
    from robot_rl.contract import ActionSpec

    contract = load_bundle(a1_bundle).contract
    ee = contract.replace(action=ActionSpec(type="ee_delta", scale=0.05, clip=1.0, dim=contract.num_joints))
    bundle = export_bundle(tmp_path / "ee_bundle", ee, torch.nn.Linear(ee.obs_dim, ee.act_dim), metrics={})
    diags = probe.collect(DiagnosticArray, "/diagnostics")
    commands = probe.collect(Float64MultiArray, CMD, make_qos("reliable", "volatile", 10))
    feed = robot_feed(probe, contract.joint_names, contract.default_joint_pos)
    _start_policy(nodes, bundle)
    probe.spin_until(lambda: probe.node.count_publishers("/diagnostics") > 0, 30.0, "policy node start")
    future = probe.node.create_client(ChangeState, f"{NODE}/change_state").call_async(
        ChangeState.Request(transition=Transition(id=Transition.TRANSITION_CONFIGURE)))
    probe.spin_until(future.done, 30.0, "configure", every=feed.publish)
    assert not future.result().success
    assert _state(probe) == State.PRIMARY_STATE_UNCONFIGURED
    probe.spin_until(lambda: any(s.level == DiagnosticStatus.ERROR and "ee_delta" in s.message
                                 for d in diags for s in d.status), 5.0, "ERROR diagnostic naming ee_delta")
    assert commands == []
