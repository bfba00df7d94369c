from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from robot_rl.config import load_config
from robot_rl.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    lr: float = 1e-3
    sizes: list[int] = field(default_factory=lambda: [64, 64])


@dataclass(frozen=True)
class Outer:
    name: str = "a"
    inner: Inner = field(default_factory=Inner)


def test_yaml_and_overrides(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  lr: 0.01\n")
    cfg = load_config(Outer, p, ["inner.sizes=[32, 16]", "name=b"])
    assert cfg == Outer(name="b", inner=Inner(lr=0.01, sizes=[32, 16]))
    # YAML 1.1 reads 3e-4 as a string; an override means the number
    assert load_config(Outer, None, ["inner.lr=3e-4"]).inner.lr == pytest.approx(3e-4)
    assert load_config(Outer, None, ["name=1e5x"]).name == "1e5x"


@pytest.mark.parametrize("override,msg", [
    ("inner.lrr=1", "unknown key inner.lrr"),
    ("inner.lr=fast", "inner.lr: expected a number"),
    ("inner.sizes=[1, x]", r"inner.sizes\[1\]: expected an integer"),
    ("nope", "must look like"),
])
def test_bad_overrides(override, msg):
    with pytest.raises(ConfigError, match=msg):
        load_config(Outer, None, [override])


def test_missing_file_and_unknown_yaml_key(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(Outer, tmp_path / "missing.yaml")
    p = tmp_path / "c.yaml"
    p.write_text("inner:\n  momentum: 0.9\n")
    with pytest.raises(ConfigError, match="unknown key inner.momentum"):
        load_config(Outer, p)
