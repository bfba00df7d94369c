"""The policy node never leaves the robot holding a policy target: on an exception inside a running tick it sends
the backup (damping: hold the measured position), says why and exits non-zero; on a requested shutdown (SIGINT,
as `robot-rl deploy` stops it) it sends the backup and exits 0. Real node process, real DDS; the failure is
injected into the running node's control step (as onnxruntime, a compiled kernel or the packer would raise)."""

from __future__ import annotations

import signal
import sys
from pathlib import Path

import numpy as np
from std_msgs.msg import Float64MultiArray

from robot_rl.bundle import load_bundle
from robot_rl.ros_nodes.procs import NodeProcess, format_param

CMD = "/forward_position_controller/commands"

FAILING_NODE = '''
import sys
from robot_rl.ros_nodes import policy_node
from robot_rl.ros_nodes.runtime import init


class FailingNode(policy_node.PolicyNode):
    """The real node whose control step raises from its 40th certify on."""

    def _configure(self):
        super()._configure()
        certify, calls = self.step.certify, [0]

        def failing(*args):
            calls[0] += 1
            if calls[0] >= 40:
                raise RuntimeError("injected failure in the control step")
            return certify(*args)

        self.step.certify = failing


init(sys.argv)
policy_node.run(FailingNode())
'''


def _start(nodes, tmp_path: Path, label: str, script: str, params: dict) -> NodeProcess:  # type: ignore[no-untyped-def]
    path = tmp_path / f"{label}.py"
    path.write_text(script)
    cmd = [sys.executable, str(path), "--ros-args"]
    for key, value in params.items():
        cmd += ["-p", f"{key}:={format_param(value)}"]
    proc = NodeProcess(label, cmd, nodes.env, nodes.log_dir / f"{label}.log")
    nodes.nodes[label] = proc
    return proc


def _command_stream(probe, robot_feed, bundle: Path):  # type: ignore[no-untyped-def]
    contract = load_bundle(bundle).contract
    q_robot = np.asarray(contract.default_joint_pos) + 0.1  # the backup (hold q) differs from any policy target
    feed = robot_feed(probe, contract.joint_names, q_robot)
    commands = probe.collect(Float64MultiArray, CMD, 100)
    return feed, commands, q_robot


def test_an_exception_in_the_tick_sends_the_backup_and_exits_nonzero(probe, nodes, a1_bundle, robot_feed,  # type: ignore[no-untyped-def]
                                                                     tmp_path) -> None:
    feed, commands, q_robot = _command_stream(probe, robot_feed, a1_bundle)
    node = _start(nodes, tmp_path, "failing", FAILING_NODE, {"bundle": str(a1_bundle), "autostart": True})
    probe.spin_until(lambda: not node.alive(), 60.0, "the failing node to exit", every=feed.publish, period=0.005)
    probe.spin_for(0.3)
    assert node.wait(1.0) != 0, "a node whose tick raised must exit non-zero"
    assert len(commands) >= 30, "the node ran its policy before the failure"
    assert not np.allclose(commands[0].data, q_robot), "policy targets first"
    np.testing.assert_allclose(commands[-1].data, q_robot, atol=1e-9, err_msg="the last command must be the backup")
    out = node.output()
    assert "injected failure in the control step" in out and "backup" in out


def test_shutdown_sends_the_backup_and_exits_zero(probe, nodes, a1_bundle, robot_feed) -> None:  # type: ignore[no-untyped-def]
    feed, commands, q_robot = _command_stream(probe, robot_feed, a1_bundle)
    node = nodes.start("policy", "policy_node", {"bundle": str(a1_bundle), "autostart": True})
    probe.spin_until(lambda: len(commands) >= 20, 60.0, "20 policy commands", every=feed.publish, period=0.005)
    assert not np.allclose(commands[-1].data, q_robot)
    node.send(signal.SIGINT)
    probe.spin_until(lambda: not node.alive(), 15.0, "the node to stop", every=feed.publish, period=0.005)
    probe.spin_for(0.3)
    assert node.wait(1.0) == 0
    np.testing.assert_allclose(commands[-1].data, q_robot, atol=1e-9, err_msg="the last command must be the backup")
    assert "backup" in node.output()
