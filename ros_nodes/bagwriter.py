"""A rosbag2 (MCAP) writer that rotates files and stays readable when its process is killed.

Each split is written by `rosbags` into a hidden work folder (`.active_<i>/`). When a split reaches its duration or
size it is closed (a complete MCAP with summary and footer), moved to `<bag>/<name>_<i>.mcap`, and the bag's
`metadata.yaml` is rewritten atomically (temp file + rename) to list every closed split. A SIGKILL therefore loses at
most the active split (bounded by `split_duration_s` / `split_size_mb`); the files `metadata.yaml` names are always
complete. `close()` finalizes the active split too. A SIGINT/SIGTERM that arrives while a split is being closed or
opened is held back until that is done, so a KeyboardInterrupt never leaves a split half-finished. Does not import
rclpy.
"""

from __future__ import annotations

import shutil
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import yaml
from rosbags.rosbag2 import StoragePlugin, Writer


@contextmanager
def _stop_signals_deferred() -> Iterator[None]:
    """Hold SIGINT/SIGTERM back until the block ends, then deliver them as they would have been.

    Swaps the Python-level handlers (a thread's signal mask would not do: the kernel hands a process-directed signal
    to any thread that does not block it, e.g. a DDS thread, and Python then raises in the main thread anyway). Python
    runs signal handlers only in the main thread, so elsewhere there is nothing to hold back."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = {sig: signal.signal(sig, lambda signum, frame: caught.append(signum))
                for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        for signum in caught:
            signal.raise_signal(signum)


class RotatingBagWriter:
    def __init__(self, path: str | Path, typestore: Any, split_duration_s: float = 5.0, split_size_mb: float = 64.0,
                 custom_data: dict[str, str] | None = None) -> None:
        self.path = Path(path)
        if self.path.exists() and any(self.path.iterdir()):
            raise FileExistsError(f"bag folder {self.path} exists and is not empty")
        self.path.mkdir(parents=True, exist_ok=True)
        self.store = typestore
        self.split_ns = int(split_duration_s * 1e9)
        self.split_bytes = int(split_size_mb * 2**20)
        self.custom_data = dict(custom_data or {})
        self.topics: dict[str, str] = {}
        self.index = 0
        self.closed_files: list[dict[str, Any]] = []
        self.topic_counts: dict[str, int] = {}
        self.topic_meta: dict[str, dict[str, Any]] = {}
        self._writer: Writer | None = None
        self._conns: dict[str, Any] = {}
        self._start_ns = 0
        self._bytes = 0

    def add_topic(self, topic: str, msgtype: str) -> None:
        """Declare a topic; it is added to every split from now on."""
        if topic in self.topics:
            return
        self.topics[topic] = msgtype
        if self._writer is not None:
            self._conns[topic] = self._writer.add_connection(topic, msgtype, typestore=self.store)

    def write(self, topic: str, timestamp_ns: int, data: bytes | memoryview) -> None:
        if self._writer is None:
            with _stop_signals_deferred():
                self._open(timestamp_ns)
        elif timestamp_ns - self._start_ns >= self.split_ns or self._bytes >= self.split_bytes:
            with _stop_signals_deferred():
                self._rotate()
                self._open(timestamp_ns)
        assert self._writer is not None
        self._writer.write(self._conns[topic], timestamp_ns, data)
        self._bytes += len(data)

    def close(self) -> None:
        if self._writer is not None:
            with _stop_signals_deferred():
                self._rotate()

    # ---- internals ---------------------------------------------------------------------------------------------
    def _work_dir(self) -> Path:
        return self.path / f".active_{self.index}"

    def _open(self, timestamp_ns: int) -> None:
        # the writer becomes active only once open, so close() never finalizes a half-opened one
        writer = Writer(self._work_dir(), version=9, storage_plugin=StoragePlugin.MCAP)
        for key, value in self.custom_data.items():
            writer.set_custom_data(key, value)
        writer.open()
        self._conns = {t: writer.add_connection(t, m, typestore=self.store) for t, m in self.topics.items()}
        self._writer = writer
        self._start_ns = timestamp_ns
        self._bytes = 0

    def _rotate(self) -> None:
        writer, self._writer = self._writer, None
        assert writer is not None
        writer.close()
        work = self._work_dir()
        meta = yaml.safe_load((work / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        name = f"{self.path.name}_{self.index}.mcap"
        (work / meta["relative_file_paths"][0]).replace(self.path / name)
        shutil.rmtree(work)
        for entry in meta["files"]:
            entry["path"] = name
            self.closed_files.append(entry)
        for item in meta["topics_with_message_count"]:
            tm = item["topic_metadata"]
            self.topic_meta[tm["name"]] = tm
            self.topic_counts[tm["name"]] = self.topic_counts.get(tm["name"], 0) + item["message_count"]
        self.index += 1
        self._write_metadata(meta)

    def _write_metadata(self, last: dict[str, Any]) -> None:
        files = [f for f in self.closed_files if f["message_count"]] or self.closed_files
        start = min(f["starting_time"]["nanoseconds_since_epoch"] for f in files)
        end = max(f["starting_time"]["nanoseconds_since_epoch"] + f["duration"]["nanoseconds"] for f in files)
        info = dict(last)
        info.update({
            "relative_file_paths": [f["path"] for f in self.closed_files],
            "files": self.closed_files,
            "starting_time": {"nanoseconds_since_epoch": start},
            "duration": {"nanoseconds": max(0, end - start)},
            "message_count": sum(f["message_count"] for f in self.closed_files),
            "topics_with_message_count": [{"topic_metadata": self.topic_meta[t], "message_count": n}
                                          for t, n in self.topic_counts.items()],
        })
        tmp = self.path / "metadata.yaml.tmp"
        tmp.write_text(yaml.safe_dump({"rosbag2_bagfile_information": info}, sort_keys=False))
        tmp.replace(self.path / "metadata.yaml")
