"""The per-control-tick record: how the policy node sends it, how the recorder stores it in rosbag2 (MCAP), and how
replay and the log tools read it back. Core code: it imports neither rclpy nor robot_rl.ros_nodes.

Over DDS the policy node publishes each tick as a `std_msgs/Float64MultiArray` with ONE layout dimension whose label
is a JSON list of `[name, size]` sections (`seq`, `joint_pos`, `observation`, ... and `safety.<key>` telemetry; text
telemetry travels as `["safety.<key>=<value>", 0]`). One label (re-encoded only when the sections change) keeps
the publish cheap; only standard message types cross DDS, so no message package must be built.

The recorder converts each record into `robot_rl_msgs/msg/ControlTick` (definitions below), registered in the
rosbags type store; the MCAP file carries the definitions, so the bag is self-describing: `read_ticks` (and any
rosbag2 / MCAP tool) decodes it without this module. Transitions are joined on `seq`, never on timestamps.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.state import RobotState

STATUS_NAMES = ("policy", "no_state", "stale", "invalid", "estop")
"""Why a tick sent what it sent: the policy's certified targets, or the backup action for a watchdog reason."""
STATUS = {name: i for i, name in enumerate(STATUS_NAMES)}

ROBOT_STATE_MSG = """\
# robot_rl_msgs/msg/RobotState: robot_rl.state.RobotState in contract joint order.
float64 stamp
string[] joint_names
float64[] joint_pos
float64[] joint_vel
float64[] joint_effort  # empty: the robot does not report efforts
float64[4] base_quat
float64[3] base_ang_vel
float64[3] base_lin_acc
"""

SAFETY_TELEMETRY_MSG = """\
# robot_rl_msgs/msg/SafetyTelemetry: the safety chain's info dict, flattened.
# Numeric entry i is values[offset_i : offset_i + sizes[i]] with offset_i = sum(sizes[:i]).
string[] keys
uint32[] sizes
float64[] values
diagnostic_msgs/KeyValue[] text
"""

CONTROL_TICK_MSG = """\
# robot_rl_msgs/msg/ControlTick: everything one control tick saw and did, under one sequence number.
uint8 STATUS_POLICY=0
uint8 STATUS_NO_STATE=1
uint8 STATUS_STALE=2
uint8 STATUS_INVALID=3
uint8 STATUS_ESTOP=4
std_msgs/Header header
uint64 seq
uint8 status
string reason
float64 compute_time
float64 state_age
robot_rl_msgs/RobotState state
float64[] command
float32[] observation
float32[] action
float64[] targets
float64[] safe_targets
robot_rl_msgs/SafetyTelemetry safety
"""

MSG_DEFS = {
    "robot_rl_msgs/msg/RobotState": ROBOT_STATE_MSG,
    "robot_rl_msgs/msg/SafetyTelemetry": SAFETY_TELEMETRY_MSG,
    "robot_rl_msgs/msg/ControlTick": CONTROL_TICK_MSG,
}
TICK_TYPE = "robot_rl_msgs/msg/ControlTick"

# fixed sections of the DDS record, in order; the sizes come from the contract
_SCALARS = ("seq", "stamp", "status", "compute_time", "state_age", "state_stamp")


def section_sizes(num_joints: int, num_commands: int, obs_dim: int, act_dim: int) -> list[tuple[str, int]]:
    return [(name, 1) for name in _SCALARS] + [
        ("joint_pos", num_joints), ("joint_vel", num_joints), ("joint_effort", num_joints), ("base_quat", 4),
        ("base_ang_vel", 3), ("base_lin_acc", 3), ("command", num_commands), ("observation", obs_dim),
        ("action", act_dim), ("targets", num_joints), ("safe_targets", num_joints)]


def flatten_info(info: dict[str, Any], prefix: str = "safety.") -> tuple[list[tuple[str, np.ndarray]], list[str]]:
    """Safety telemetry -> numeric entries (key, float64 array) and text entries `key=value`."""
    numeric: list[tuple[str, np.ndarray]] = []
    text: list[str] = []
    for key, value in info.items():
        name = prefix + str(key)
        if value is None:
            continue
        if isinstance(value, dict):
            sub_num, sub_text = flatten_info(value, name + ".")
            numeric += sub_num
            text += sub_text
        elif isinstance(value, str):
            text.append(f"{name}={value}")
        elif isinstance(value, (list, tuple)) and value and all(isinstance(v, str) for v in value):
            text.append(f"{name}={','.join(value)}")
        else:
            try:
                arr = np.asarray(value, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                text.append(f"{name}={value}")
                continue
            numeric.append((name, arr))
    return numeric, text


@dataclass
class TickPacker:
    """Packs one tick into a preallocated float64 buffer plus layout labels (rebuilt only when they change)."""

    num_joints: int
    num_commands: int
    obs_dim: int
    act_dim: int
    fixed: np.ndarray = field(init=False)
    """The fixed sections; write them through `view(name)`."""
    buffer: np.ndarray = field(init=False)
    """What is published: the fixed sections followed by the telemetry (reallocated when the telemetry grows)."""
    labels: list[tuple[str, int]] = field(init=False)
    _offsets: dict[str, int] = field(init=False)
    _fixed: int = field(init=False)
    _signature: tuple[Any, ...] = field(init=False, default=())

    def __post_init__(self) -> None:
        self._fixed_labels = section_sizes(self.num_joints, self.num_commands, self.obs_dim, self.act_dim)
        self._offsets = {}
        off = 0
        for name, size in self._fixed_labels:
            self._offsets[name] = off
            off += size
        self._fixed = off
        self.fixed = np.zeros(off)
        self.buffer = np.zeros(off)
        self.labels = list(self._fixed_labels)

    def view(self, name: str) -> np.ndarray:
        """A writable view of one fixed section (stable for the packer's lifetime)."""
        off = self._offsets[name]
        size = dict(self._fixed_labels)[name]
        return self.fixed[off:off + size]

    def pack(self, info: dict[str, Any], reason: str) -> bool:
        """Append telemetry after the fixed sections; return True when the labels changed (layout must be rebuilt)."""
        numeric, text = flatten_info(info)
        if reason:
            text.append(f"reason={reason}")
        signature = (tuple((k, v.size) for k, v in numeric), tuple(text))
        total = self._fixed + sum(v.size for _, v in numeric)
        if self.buffer.shape[0] != total:
            self.buffer = np.zeros(total)
        self.buffer[:self._fixed] = self.fixed
        off = self._fixed
        for _, v in numeric:
            self.buffer[off:off + v.size] = v
            off += v.size
        if signature == self._signature:
            return False
        self._signature = signature
        self.labels = list(self._fixed_labels) + [(k, v.size) for k, v in numeric] + [(t, 0) for t in text]
        return True


@dataclass
class TickRecord:
    """One decoded tick (from DDS or from a bag)."""

    seq: int
    stamp: float
    status: int
    reason: str
    compute_time: float
    state_age: float
    state: RobotState
    command: np.ndarray
    observation: np.ndarray
    action: np.ndarray
    targets: np.ndarray
    safe_targets: np.ndarray
    safety: dict[str, Any]

    @property
    def status_name(self) -> str:
        return STATUS_NAMES[self.status] if 0 <= self.status < len(STATUS_NAMES) else str(self.status)


def encode_labels(labels: list[tuple[str, int]]) -> str:
    return json.dumps(labels, separators=(",", ":"))


def decode_labels(text: str) -> list[tuple[str, int]]:
    return [(str(name), int(size)) for name, size in json.loads(text)]


def unpack(labels: list[tuple[str, int]], data: np.ndarray) -> TickRecord:
    """Decode a DDS tick record (layout labels + data) into a TickRecord."""
    sections: dict[str, np.ndarray] = {}
    safety: dict[str, Any] = {}
    reason = ""
    off = 0
    for label, size in labels:
        if size == 0 and "=" in label:
            key, value = label.split("=", 1)
            if key == "reason":
                reason = value
            else:
                safety[key.removeprefix("safety.")] = value
            continue
        chunk = np.asarray(data[off:off + size], np.float64)
        off += size
        if label.startswith("safety."):
            safety[label.removeprefix("safety.")] = chunk
        else:
            sections[label] = chunk
    state = RobotState(joint_pos=sections["joint_pos"], joint_vel=sections["joint_vel"],
                       base_quat=sections["base_quat"], base_ang_vel=sections["base_ang_vel"],
                       base_lin_acc=sections["base_lin_acc"], timestamp=float(sections["state_stamp"][0]),
                       joint_effort=effort_or_empty(sections["joint_effort"]) if np.isfinite(
                           sections["joint_effort"]).any() else None)
    return TickRecord(seq=int(sections["seq"][0]), stamp=float(sections["stamp"][0]),
                      status=int(sections["status"][0]), reason=reason,
                      compute_time=float(sections["compute_time"][0]), state_age=float(sections["state_age"][0]),
                      state=state, command=sections["command"], observation=sections["observation"].astype(np.float32),
                      action=sections["action"].astype(np.float32), targets=sections["targets"],
                      safe_targets=sections["safe_targets"], safety=safety)


# ---- rosbags side ----------------------------------------------------------------------------------------------
def typestore() -> Any:
    """A rosbags type store (ROS 2 Kilted) with the robot_rl_msgs types registered."""
    from rosbags.typesys import Stores, get_types_from_msg, get_typestore

    store = get_typestore(Stores.ROS2_KILTED)
    types: dict[str, Any] = {}
    for name, text in MSG_DEFS.items():
        types.update(get_types_from_msg(text, name))
    store.register(types)
    return store


def to_bag_message(store: Any, rec: TickRecord, joint_names: list[str]) -> Any:
    """A TickRecord as a rosbags `robot_rl_msgs/msg/ControlTick` object, ready for `store.serialize_cdr`."""
    types = store.types
    sec = int(rec.stamp)
    stamp = types["builtin_interfaces/msg/Time"](sec=sec, nanosec=int(round((rec.stamp - sec) * 1e9)) % 1_000_000_000)
    header = types["std_msgs/msg/Header"](stamp=stamp, frame_id="")
    s = rec.state
    state = types["robot_rl_msgs/msg/RobotState"](
        stamp=float(s.timestamp), joint_names=list(joint_names), joint_pos=np.asarray(s.joint_pos, np.float64),
        joint_vel=np.asarray(s.joint_vel, np.float64), joint_effort=effort_or_empty(s.joint_effort),
        base_quat=np.asarray(s.base_quat, np.float64), base_ang_vel=np.asarray(s.base_ang_vel, np.float64),
        base_lin_acc=np.asarray(s.base_lin_acc, np.float64))
    keys, sizes, values, text = [], [], [], []
    kv = types["diagnostic_msgs/msg/KeyValue"]
    for key, value in rec.safety.items():
        if isinstance(value, str):
            text.append(kv(key=key, value=value))
        else:
            arr = np.asarray(value, np.float64).reshape(-1)
            keys.append(key)
            sizes.append(arr.size)
            values.append(arr)
    safety = types["robot_rl_msgs/msg/SafetyTelemetry"](
        keys=keys, sizes=np.asarray(sizes, np.uint32),
        values=np.concatenate(values) if values else np.zeros(0), text=text)
    return types[TICK_TYPE](
        header=header, seq=rec.seq, status=rec.status, reason=rec.reason, compute_time=rec.compute_time,
        state_age=rec.state_age, state=state, command=np.asarray(rec.command, np.float64),
        observation=np.asarray(rec.observation, np.float32), action=np.asarray(rec.action, np.float32),
        targets=np.asarray(rec.targets, np.float64), safe_targets=np.asarray(rec.safe_targets, np.float64),
        safety=safety)


def effort_or_empty(effort: np.ndarray | None) -> np.ndarray:
    """Joint efforts for a message: empty when not measured (None, or the NaN the policy node's reader writes for a
    robot that reports none), so a log never shows zero torque that nobody measured."""
    if effort is None:
        return np.zeros(0)
    arr = np.asarray(effort, np.float64)
    return np.zeros(0) if arr.size and np.isnan(arr).all() else arr


def from_bag_message(msg: Any) -> TickRecord:
    """A deserialized `robot_rl_msgs/msg/ControlTick` (from any rosbags reader) as a TickRecord."""
    s = msg.state
    state = RobotState(joint_pos=np.asarray(s.joint_pos), joint_vel=np.asarray(s.joint_vel),
                       base_quat=np.asarray(s.base_quat), base_ang_vel=np.asarray(s.base_ang_vel),
                       base_lin_acc=np.asarray(s.base_lin_acc), timestamp=float(s.stamp),
                       joint_effort=np.asarray(s.joint_effort) if len(s.joint_effort) else None)
    safety: dict[str, Any] = {}
    off = 0
    for key, size in zip(msg.safety.keys, msg.safety.sizes):
        safety[key] = np.asarray(msg.safety.values[off:off + int(size)])
        off += int(size)
    for kv in msg.safety.text:
        safety[kv.key] = kv.value
    stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
    return TickRecord(seq=int(msg.seq), stamp=stamp, status=int(msg.status), reason=msg.reason,
                      compute_time=float(msg.compute_time), state_age=float(msg.state_age), state=state,
                      command=np.asarray(msg.command), observation=np.asarray(msg.observation),
                      action=np.asarray(msg.action), targets=np.asarray(msg.targets),
                      safe_targets=np.asarray(msg.safe_targets), safety=safety)


def read_ticks(bag: str | Path, topic: str | None = None) -> Iterator[TickRecord]:
    """Every ControlTick in a rosbag2 directory (all splits), in log-time order. Needs only rosbags.

    Message definitions are taken from the bag itself (self-describing), not from this module.
    """
    from rosbags.highlevel import AnyReader
    from rosbags.typesys import Stores, get_typestore

    with AnyReader([Path(bag)], default_typestore=get_typestore(Stores.ROS2_KILTED)) as reader:
        conns = [c for c in reader.connections
                 if c.msgtype == TICK_TYPE and (topic is None or c.topic == topic)]
        for conn, _, raw in reader.messages(connections=conns):
            yield from_bag_message(reader.deserialize(raw, conn.msgtype))
