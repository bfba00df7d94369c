"""Atomic writes: a replaced file or folder is never missing, never half-written, and a failed write keeps the old."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from robot_rl.atomic import replace_dir, write_file, write_text


def _version_dir(parent: Path, name: str, version: int) -> Path:
    d = parent / f".build_{name}_{version}"
    d.mkdir()
    (d / "contract.json").write_text(f'{{"version": {version}}}')
    (d / "policy.onnx").write_bytes(bytes([version % 256]) * 4096)
    return d


def test_replace_dir_never_leaves_the_path_missing(tmp_path: Path) -> None:
    target = tmp_path / "bundle"
    replace_dir(_version_dir(tmp_path, "b", 0), target)
    missing: list[int] = []
    stop = threading.Event()

    def watch() -> None:
        while not stop.is_set():
            if not (target / "contract.json").exists():
                missing.append(1)

    reader = threading.Thread(target=watch)
    reader.start()
    try:
        for version in range(1, 200):
            replace_dir(_version_dir(tmp_path, "b", version), target)
    finally:
        stop.set()
        reader.join()
    assert missing == []
    assert (target / "contract.json").read_text() == '{"version": 199}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]  # no build or old folders left behind


def test_replace_dir_creates_a_new_path(tmp_path: Path) -> None:
    replace_dir(_version_dir(tmp_path, "d", 3), tmp_path / "out")
    assert (tmp_path / "out" / "contract.json").read_text() == '{"version": 3}'


def test_write_text_replaces_and_leaves_no_temporary(tmp_path: Path) -> None:
    target = tmp_path / "eval.json"
    write_text(target, "old")
    write_text(target, "new")
    assert target.read_text() == "new"
    assert [p.name for p in tmp_path.iterdir()] == ["eval.json"]


def test_failed_write_keeps_the_old_file(tmp_path: Path) -> None:
    target = tmp_path / "model_10.pt"
    write_text(target, "durable checkpoint")

    def half_write(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError, match="disk full"):
        write_file(target, half_write)
    assert target.read_text() == "durable checkpoint"
    assert [p.name for p in tmp_path.iterdir()] == ["model_10.pt"]
