"""Damaged rosbag2 bags: which storage files are damaged, and the messages that still read.

An MCAP file is streamed with the `mcap` library's `StreamReader`, chunk and data-section CRCs validated. It is
damaged when the stream stops before the footer and the closing magic (truncated: a killed recorder, a full disk),
when a CRC does not match, or when a message does not deserialize. Recovering keeps every message before the
damage, the messages of an uncompressed chunk cut short up to the cut (a chunk's records are MCAP records
themselves), and skips a chunk whose CRC fails while the file's framing still holds. A SQLite3 file is damaged when
`PRAGMA integrity_check` fails or its messages table does not read; recovering keeps the rows that still read.
Storage files are opened read-only and never modified.
"""

from __future__ import annotations

import io
import re
import sqlite3
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

from robot_rl.dataset import DatasetError

Keep = Callable[[str, str], bool]
"""(topic, message type) -> whether the message is wanted (deserialized and handed to the sink)."""
Sink = Callable[[str, str, int, Any], None]
"""Receives (topic, message type, log time ns, deserialized message) in file order."""


def split_files(bag: Path) -> list[Path]:
    """The closed MCAP splits of a bag folder in recording order (`name_2` before `name_10`); the unfinished split a
    killed recorder leaves in `.active_<i>/` is not among them."""
    def order(p: Path) -> list[Any]:
        return [int(s) if s.isdigit() else s for s in re.split(r"(\d+)", p.name)]

    return sorted(bag.glob("*.mcap"), key=order)


class _Messages:
    """Schemas and channels of one MCAP file as its records stream past; wanted messages go to the sink."""

    def __init__(self, typestore: Any, keep: Keep, sink: Sink) -> None:
        self.store, self.keep, self.sink = typestore, keep, sink
        self.schemas: dict[int, str] = {}
        self.channels: dict[int, tuple[str, str]] = {}
        self.undecodable: dict[str, int] = {}
        """topic -> wanted messages that did not deserialize."""
        self.bad_schemas: set[str] = set()
        """Schemas (message types) whose definition did not parse."""
        self.wanted_types: set[str] = set()

    def feed(self, record: Any) -> None:
        from mcap.records import Channel, Message, Schema

        if isinstance(record, Schema):
            self.schemas[record.id] = record.name
            if record.name not in self.store.types and record.encoding == "ros2msg":
                self._register(record.name, record.data.decode())
        elif isinstance(record, Channel):
            self.channels[record.id] = (record.topic, self.schemas.get(record.schema_id, ""))
        elif isinstance(record, Message):
            topic, msgtype = self.channels.get(record.channel_id, ("", ""))
            if not self.keep(topic, msgtype):
                return
            self.wanted_types.add(msgtype)
            try:
                msg = self.store.deserialize_cdr(record.data, msgtype)
            except Exception:  # noqa: BLE001 - a damaged message: rosbags raises several types
                self.undecodable[topic] = self.undecodable.get(topic, 0) + 1
                return
            self.sink(topic, msgtype, record.log_time, msg)

    def _register(self, name: str, text: str) -> None:
        """rosbag2's ros2msg schema: the main definition, then `=====` separated `MSG: pkg/msg/Type` dependencies."""
        from rosbags.typesys import get_types_from_msg

        parts = text.split("=" * 80 + "\n")
        types: dict[str, Any] = {}
        try:
            types.update(get_types_from_msg(parts[0], name))
            for part in parts[1:]:
                head, _, body = part.partition("\n")
                dep = head.removeprefix("MSG: ").strip()
                types.update(get_types_from_msg(body, dep if "/msg/" in dep else dep.replace("/", "/msg/", 1)))
            self.store.register(types)
        except Exception:  # noqa: BLE001 - a schema that does not parse: named, its messages counted undecodable
            self.bad_schemas.add(name)


def _stream_mcap(data: bytes, feed: Callable[[Any], None]) -> str:
    """Feed every record of an MCAP file (chunks opened) in file order; '' when the file is whole, else where and
    why the stream stops or which chunks were skipped. The records before the damage are fed either way."""
    from mcap.data_stream import ReadDataStream
    from mcap.exceptions import EndOfFile, McapError
    from mcap.opcode import Opcode
    from mcap.records import Chunk
    from mcap.stream_reader import CRCValidationError, StreamReader, breakup_chunk

    buf = io.BytesIO(data)
    end = 0  # end of the last complete record: where a damaged stream stops
    skipped: list[str] = []
    try:
        for record in StreamReader(buf, emit_chunks=True, validate_crcs=True).records:
            if isinstance(record, Chunk):
                try:
                    inner = breakup_chunk(record, validate_crc=True)
                except (CRCValidationError, McapError, ValueError) as exc:
                    skipped.append(f"chunk at byte {end} skipped ({exc})")
                    inner = []
                for item in inner:
                    feed(item)
            else:
                feed(record)
            end = buf.tell()
    except (EndOfFile, struct.error):  # a field cut short: struct.error
        # an uncompressed chunk cut short still holds whole records up to the cut; `Chunk.read` keeps what is there
        tail = ReadDataStream(io.BytesIO(data[end:]))
        try:
            if tail.read1() == Opcode.CHUNK:
                tail.read8()
                chunk = Chunk.read(tail)
                if not chunk.compression:
                    for item in StreamReader(io.BytesIO(chunk.data), skip_magic=True).records:
                        feed(item)
        except (EndOfFile, McapError, ValueError, struct.error):
            pass
        return "; ".join([*skipped, f"truncated: ends at byte {len(data)} inside the record at byte {end}"])
    except (CRCValidationError, McapError, ValueError) as exc:
        return "; ".join([*skipped, f"unreadable after byte {end} ({type(exc).__name__}: {exc})"])
    return "; ".join(skipped)


def mcap_damage(file: Path) -> str:
    """'' when the MCAP file streams whole with valid CRCs, else what is wrong with it."""
    return _stream_mcap(file.read_bytes(), lambda record: None)


def sqlite_damage(file: Path) -> str:
    """'' when the SQLite3 file passes its integrity check and its messages read, else what is wrong with it."""
    try:
        con = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
        try:
            verdict = con.execute("PRAGMA integrity_check").fetchone()[0]
            con.execute("SELECT COUNT(*) FROM messages").fetchone()
        finally:
            con.close()
    except sqlite3.Error as exc:
        return f"{type(exc).__name__}: {exc}"
    return "" if verdict == "ok" else f"integrity check: {verdict}"


def damaged_files(bag: Path) -> dict[Path, str]:
    """Every storage file of a bag folder (or the one .mcap file) that is damaged, with what is wrong with it."""
    if bag.is_file():
        files = [bag]
    else:
        files = split_files(bag) + sorted(bag.glob("*.db3"))
    found = {f: (sqlite_damage(f) if f.suffix == ".db3" else mcap_damage(f)) for f in files}
    return {f: why for f, why in found.items() if why}


def culprit(bag: Path) -> str:
    """The damaged storage files of a bag, named; the bag itself when none of its files is (its index is)."""
    return ", ".join(str(f) for f in damaged_files(bag)) or str(bag)


def read_mcap(file: Path, keep: Keep, sink: Sink, typestore: Any, recover: bool) -> str:
    """Stream the wanted messages of one MCAP file to `sink`. Returns '' when the file read whole, else a note
    naming it and its damage (`recover`); without `recover` damage is a DatasetError naming the file."""
    messages = _Messages(typestore, keep, sink)
    damage = _stream_mcap(file.read_bytes(), messages.feed)
    bad = sorted(messages.bad_schemas & messages.wanted_types)  # a schema nobody reads costs nothing
    if bad:
        damage = "; ".join(d for d in (damage, f"schemas that do not parse: {', '.join(bad)}") if d)
    if messages.undecodable:
        topics = ", ".join(f"{n} on {t}" for t, n in messages.undecodable.items())
        damage = "; ".join(d for d in (damage, f"undecodable messages skipped: {topics}") if d)
    if not damage:
        return ""
    if not recover:
        raise DatasetError(f"{file}: truncated or corrupted MCAP ({damage}); re-run with --recover to convert the "
                           "readable part")
    return f"{file} is damaged ({damage}): converted the readable part"


def read_sqlite_rows(file: Path, keep: Keep, sink: Sink, typestore: Any, expected: int | None = None) -> str:
    """The wanted messages of a SQLite3 bag file whose rows still read. Returns what was lost ('' when nothing):
    rows that do not deserialize (skipped, counted per topic), where reading stopped if the table breaks off, and
    how many rows were read of the `expected` (the bag's metadata.yaml message count for the file)."""
    try:
        con = sqlite3.connect(f"file:{file}?mode=ro", uri=True)
    except sqlite3.Error as exc:
        return f"not opened ({type(exc).__name__}: {exc})"
    rows, last_id, stopped = 0, None, ""
    undecodable: dict[str, int] = {}
    try:
        topics = {tid: (name, typ) for tid, name, typ in con.execute("SELECT id, name, type FROM topics")}
        cursor = con.execute("SELECT id, topic_id, timestamp, data FROM messages ORDER BY id")
        while True:
            try:
                row = cursor.fetchone()
            except sqlite3.Error as exc:
                stopped = f"reading stopped after row id {last_id} ({type(exc).__name__}: {exc})"
                break
            if row is None:
                break
            rows, last_id = rows + 1, row[0]
            topic, msgtype = topics.get(row[1], ("", ""))
            if not keep(topic, msgtype):
                continue
            try:
                msg = typestore.deserialize_cdr(row[3], msgtype)
            except Exception:  # noqa: BLE001 - a damaged row: counted, skipped
                undecodable[topic] = undecodable.get(topic, 0) + 1
                continue
            sink(topic, msgtype, int(row[2]), msg)
    except sqlite3.Error as exc:
        stopped = stopped or f"reading stopped after row id {last_id} ({type(exc).__name__}: {exc})"
    finally:
        con.close()
    lost = [f"{n} undecodable rows skipped on {t}" for t, n in undecodable.items()]
    read = f"{rows} of {expected} rows read" if expected is not None else f"{rows} rows read"
    return "; ".join([read, *lost, stopped]) if lost or stopped or (expected is not None and rows < expected) else ""


def _message_counts(bag: Path) -> dict[str, int]:
    """Messages per storage file as the bag's metadata.yaml lists them (empty when it does not read)."""
    import yaml

    try:
        info = yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]
        return {str(f["path"]): int(f["message_count"]) for f in info.get("files", [])}
    except (OSError, yaml.YAMLError, KeyError, TypeError, ValueError):
        return {}


def recover_bag(bag: Path, keep: Keep, sink: Sink, typestore: Any) -> str:
    """The readable part of every storage file of a bag whose index did not read. Returns a note naming exactly the
    damaged files, or saying that none is."""
    notes = [read_mcap(f, keep, sink, typestore, recover=True) for f in split_files(bag)]
    expected = _message_counts(bag)
    for f in sorted(bag.glob("*.db3")):
        why = sqlite_damage(f)
        lost = read_sqlite_rows(f, keep, sink, typestore, expected.get(f.name))
        damage = "; ".join(d for d in (why, lost) if d)
        notes.append(f"{f} is damaged ({damage}): converted the rows that still read" if damage else "")
    damaged = [n for n in notes if n]
    return "; ".join(damaged) or "no storage file is damaged (the bag's index did not read): read them directly"
