"""Data collection over ROS 2: the policy node's `exploration_std` adds Gaussian noise to the deployed actions
before the safety chain, the recorder logs the noisy action the chain received, and `replay` turns the bag into a
dataset whose `policy` actions are the bundle's plus that noise (real nodes, DDS on an isolated localhost domain)."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("rclpy", reason="ROS 2 (rclpy) is not installed; pip install -e '.[ros]'")

BUNDLE = Path(__file__).parents[1] / "ros" / "data" / "a1_walk"


def test_policy_node_exploration_is_recorded_and_certified(tmp_path: Path) -> None:
    from robot_rl.bundle import load_bundle
    from robot_rl.dataset import load_dataset
    from robot_rl.replay import TopicMapping, replay
    from robot_rl.ros_nodes.procs import NodeGroup
    from robot_rl.ros_nodes.recorder import DEFAULT_TOPICS

    bundle = load_bundle(BUNDLE)
    c = bundle.contract
    bag = tmp_path / "bag"
    group = NodeGroup(None, tmp_path / "logs")  # a random domain id, localhost discovery
    (tmp_path / "logs").mkdir()
    std = 0.2
    try:
        group.start("recorder", "recorder", {"output": str(bag), "topics": DEFAULT_TOPICS})
        group.start("sim_robot", "sim_robot_node", {
            "robot": c.robot, "backend": "mujoco", "params": json.dumps({"motor_strength": 0.8}),
            "command_joints": list(c.joint_names), "command_rate_hz": float(c.policy_rate_hz),
            "physics_rate_hz": float(c.physics_rate_hz), "kp": float(c.kp[0]), "kd": float(c.kd[0])})
        group.start("policy", "policy_node", {"bundle": str(BUNDLE.resolve()), "autostart": True,
                                              "exploration_std": std, "exploration_seed": 3})
        group.start("cmd_vel", "cmd_vel_publisher", {"vx": 0.5, "vy": 0.0, "wz": 0.0})
        time.sleep(10.0)
    finally:
        group.stop_all()
    _, summary = replay([bag], tmp_path / "ds", mapping=TopicMapping(ground_truth=""), recover=True)
    ds = load_dataset(tmp_path / "ds")
    raw, applied = ds.transitions("policy"), ds.transitions()
    assert len(raw) >= 100, summary
    noise = raw.action - bundle.act(raw.obs)
    assert abs(float(noise.mean())) < 0.02 and 0.8 * std < float(noise.std()) < 1.2 * std
    # the safety chain certified every noisy action: executed targets within the contract's joint limits
    lo, hi = np.asarray(c.joint_pos_lower), np.asarray(c.joint_pos_upper)
    targets = np.concatenate([ep.infos["safe_targets"] for ep in ds.episodes])
    assert np.all(targets >= lo - 1e-6) and np.all(targets <= hi + 1e-6)
    assert applied.action.shape == raw.action.shape
    assert "exploration: noise std 0.2" in (tmp_path / "logs" / "policy.log").read_text()
