"""Inconsistent safety configs are refused when the chain is built, with a message naming the field."""

from __future__ import annotations

import pytest
from safety_harness import IIWA_URDF, build_robot

from robot_rl.errors import ConfigError
from robot_rl.safety import build_chain


@pytest.mark.parametrize("entry,msg", [
    ({"type": "bogus"}, r"safety\[0\]\.type: unknown filter 'bogus'"),
    ({"type": "cbf", "gamma": 1.5}, r"safety\[0\]\.gamma: must be in \(0, 1\]"),
    ({"type": "cbf", "joint_inertia": -1.0}, r"safety\[0\]\.joint_inertia: must be > 0"),
    ({"type": "cbf", "disturbance_torque": [1.0, -1.0]}, r"safety\[0\]\.disturbance_torque: has 2 values"),
    ({"type": "cbf", "weights": [-1.0] * 7}, r"safety\[0\]\.weights: must be > 0"),
    ({"type": "cbf", "gama": 0.5}, r"unknown key gama in safety\[0\]"),
    ({"type": "cbf", "gamma": "fast"}, r"safety\[0\]\.gamma: expected a number"),
    ({"type": "passivity", "tank_min": 3.0, "tank_init": 1.0}, r"safety\[0\]\.tank_min: must be <= tank_init"),
    ({"type": "rate_limit", "max_rate": -2.0}, r"safety\[0\]\.max_rate: must be > 0"),
    ({"type": "state", "max_tilt": -0.1}, r"safety\[0\]\.max_tilt"),
    ({"type": "cbf", "workspace": {"urdf": IIWA_URDF, "ee_link": "lbr_iiwa_link_7", "lower": [0.5, 0, 0],
                                   "upper": [0.1, 1, 1]}}, r"safety\[0\]\.workspace\.lower: lower\[0\] >= upper"),
    ({"type": "cbf", "workspace": {"urdf": IIWA_URDF, "ee_link": "nope"}}, r"workspace\.ee_link: 'nope'"),
    ({"type": "cbf", "model": "coupled"}, r"safety\[0\]\.urdf: the coupled model needs a URDF"),
    ({"type": "cbf", "model": "stiff"}, r"safety\[0\]\.model"),
    ({"type": "cbf", "model": "coupled", "urdf": IIWA_URDF, "armature": -0.1}, r"safety\[0\]\.armature: must be >= 0"),
    ({"type": "cbf", "model": "coupled", "urdf": IIWA_URDF, "gravity": [0, -9.8]}, r"safety\[0\]\.gravity: needs 3"),
    ({"type": "cbf", "model": "coupled", "urdf": IIWA_URDF, "base_link": "nope"}, r"cbf\.base_link: 'nope'"),
])
def test_bad_config_names_the_field(entry, msg):
    robot = build_robot("iiwa")
    with pytest.raises(ConfigError, match=msg):
        build_chain(robot.contract.replace(safety=[entry]))


def test_duplicate_and_malformed_entries():
    c = build_robot("a1").contract
    with pytest.raises(ConfigError, match=r"safety\[1\]\.type: filter 'cbf' appears twice"):
        build_chain(c.replace(safety=[{"type": "cbf"}, {"type": "cbf"}]))
    with pytest.raises(ConfigError, match=r"safety\[0\]: expected a mapping"):
        build_chain(c.replace(safety=["cbf"]))


def test_full_chain_builds_in_contract_order():
    c = build_robot("a1").contract.replace(safety=[
        {"type": "sanity"}, {"type": "state", "max_tilt": 0.8}, {"type": "rate_limit", "max_rate": 20.0},
        {"type": "cbf", "joint_inertia": 0.03}, {"type": "passivity"}])
    chain = build_chain(c)
    assert chain.names == ["sanity", "state", "rate_limit", "cbf", "passivity"]
    assert [f.name for f in chain.filters] == ["rate_limit", "cbf", "passivity"]
