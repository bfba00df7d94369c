"""rosbag2 logs -> control ticks -> episodes -> an offline-RL dataset (robot_rl.dataset, Minari format).

Two kinds of bag are read with `rosbags` (MCAP and SQLite3 storage):

- **robot_rl bags** (the recorder of robot_rl.ros_nodes): `robot_rl_msgs/msg/ControlTick` records carry per tick the
  RobotState, observation, raw action, targets, certified targets and safety telemetry under one sequence number;
  transitions are joined on the sequence number. The contract comes from the recorded `/policy_node/contract` topic
  or from `--bundle`.
- **raw-topic bags** from any ros2_control robot (`/joint_states`, an IMU, `/cmd_vel`, the controller's command
  topic): given a contract and a `TopicMapping`, ticks are rebuilt at the contract's policy rate and observations go
  through the contract's observer, exactly as the policy node builds them.

Episodes split at resets (sequence numbers going back), dropped ticks, time gaps, e-stop / watchdog ticks and falls.
Rewards are recomputed with the reward of the task the log came from: its terms, weights and reward config
(robot_rl.rewards.weighted_sum), with the task config the policy was trained with (robot_rl.bundle.task_config_of);
terms whose inputs a log lacks (TERM_INPUTS: base velocity and height without a ground-truth pose topic, feet air
time and collisions without a contacts topic, torques from a robot that reports no efforts) are left out of the
whole dataset and listed with the reason in its metadata and report (fine-tuning online then weights them 0).

Bags are opened read-only and never modified; a truncated or corrupted bag is an error naming the file, and
`recover=True` converts the readable part.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.bag_recovery import Keep, read_mcap, recover_bag, split_files
from robot_rl.bag_recovery import culprit as _culprit
from robot_rl.contract import PolicyContract
from robot_rl.control_step import ControlStep, codec_for, intervened
from robot_rl.dataset import REWARD_TERMS_KEY, DatasetError, Episode, write_dataset
from robot_rl.errors import ContractError
from robot_rl.state import RobotState, projected_gravity
from robot_rl.tick_record import STATUS, TICK_TYPE, TickRecord, from_bag_message

CONTRACT_TOPIC = "/policy_node/contract"


@dataclass(frozen=True)
class TopicMapping:
    """Where a raw-topic bag keeps what a contract needs (all names as recorded)."""

    joint_states: str = "/joint_states"
    """sensor_msgs/JointState topic."""
    imu: str = "/imu"
    """sensor_msgs/Imu topic (orientation, angular velocity, linear acceleration)."""
    cmd_vel: str = "/cmd_vel"
    """geometry_msgs/Twist velocity command (vx, vy, yaw rate); empty: zero command."""
    commands: str = "/forward_position_controller/commands"
    """std_msgs/Float64MultiArray joint position targets sent to the controller."""
    command_joints: list[str] = field(default_factory=list)
    """Joint order of the command array (names as in the bag); empty: the contract order."""
    joint_names: dict[str, str] = field(default_factory=dict)
    """Contract joint name -> name in the bag, for robots whose drivers name joints differently."""
    ground_truth: str = "/sim_robot/ground_truth"
    """geometry_msgs/PoseStamped base pose (motion capture, simulator) for base height/velocity, used when the bag
    has it (the robot_rl recorder records the simulated robot's); empty: never."""
    contacts: str = "/sim_robot/contacts"
    """std_msgs/Float64MultiArray contact forces [N] of named bodies (one layout dimension labelled with a JSON list
    of body names), for the feet-air-time and collision rewards, used when the bag has it; empty: never."""


@dataclass
class BagContent:
    """What was read from one bag: ticks (robot_rl bags), raw messages per topic, notes on recovery."""

    path: Path
    ticks: list[tuple[int, TickRecord]] = field(default_factory=list)
    """(log time ns, record)."""
    raw: dict[str, list[tuple[int, Any]]] = field(default_factory=dict)
    """topic -> [(log time ns, deserialized message)]."""
    contract_json: str | None = None
    recovered: str = ""
    """Empty when the bag was read whole; otherwise what was skipped."""


# ---- reading ---------------------------------------------------------------------------------------------------
def _typestore() -> Any:
    from robot_rl.tick_record import typestore

    return typestore()


def read_bag(bag: str | Path, topics: set[str] | None = None, recover: bool = False) -> BagContent:
    """Read the ticks, the contract and the requested raw topics of one rosbag2 folder (or a single .mcap file)."""
    bag = Path(bag)
    if not bag.exists():
        raise DatasetError(f"bag not found: {bag}")
    content = BagContent(path=bag)
    wanted = set(topics or ()) | {CONTRACT_TOPIC}
    if bag.is_file():
        if bag.suffix != ".mcap":
            raise DatasetError(f"{bag}: not a rosbag2 folder or .mcap file")
        _read_mcap_stream(bag, wanted, content, recover)
        return content
    if not (bag / "metadata.yaml").is_file():
        splits = split_files(bag) + sorted(bag.glob(".active_*/*.mcap"))
        if recover and splits:
            for split in splits:
                _read_mcap_stream(split, wanted, content, True)
            content.recovered = content.recovered or "no metadata.yaml: read the MCAP splits directly"
            return content
        raise DatasetError(f"{bag}: not a rosbag2 bag (no metadata.yaml)")
    from rosbags.highlevel import AnyReader

    try:
        with AnyReader([bag], default_typestore=_typestore()) as reader:
            conns = [c for c in reader.connections if c.msgtype == TICK_TYPE or c.topic in wanted]
            for conn, t_ns, raw in reader.messages(connections=conns):
                try:
                    _store(content, conn.topic, conn.msgtype, t_ns, reader.deserialize(raw, conn.msgtype))
                except Exception as exc:  # noqa: BLE001 - a corrupted record: rosbags raises several types
                    if not recover:
                        raise DatasetError(f"{_culprit(bag)}: corrupted message on {conn.topic} "
                                           f"({type(exc).__name__}); re-run with --recover to skip it") from None
                    content.recovered = f"skipped undecodable messages on {conn.topic}"
    except DatasetError:
        raise
    except Exception as exc:  # noqa: BLE001 - truncated MCAP / damaged SQLite: many exception types
        if not recover:
            raise DatasetError(f"{_culprit(bag)}: bag is truncated or corrupted ({type(exc).__name__}: "
                               f"{str(exc).splitlines()[0][:160] if str(exc) else ''}); re-run with --recover to "
                               "convert the readable part") from None
        _recover(bag, wanted, content)
    if recover:
        for split in sorted(bag.glob(".active_*/*.mcap")):  # the split a killed recorder was writing
            _read_mcap_stream(split, wanted, content, True)
            content.recovered = content.recovered or f"read unfinished split {split.name}"
    content.ticks.sort(key=lambda x: x[0])
    return content


def _store(content: BagContent, topic: str, msgtype: str, t_ns: int, msg: Any) -> None:
    if msgtype == TICK_TYPE:
        content.ticks.append((t_ns, from_bag_message(msg)))
    elif topic == CONTRACT_TOPIC:
        content.contract_json = msg.data
    else:
        content.raw.setdefault(topic, []).append((t_ns, msg))


def _keep(wanted: set[str]) -> Keep:
    return lambda topic, msgtype: msgtype == TICK_TYPE or topic in wanted


def _read_mcap_stream(file: Path, wanted: set[str], content: BagContent, recover: bool) -> None:
    note = read_mcap(file, _keep(wanted), partial(_store, content), _typestore(), recover)
    content.recovered = "; ".join(n for n in (content.recovered, note) if n)


def _recover(bag: Path, wanted: set[str], content: BagContent) -> None:
    content.ticks.clear()  # the reader that failed may have stored part of the bag
    content.raw.clear()
    content.recovered = recover_bag(bag, _keep(wanted), partial(_store, content), _typestore())


# ---- raw topics -> ticks ---------------------------------------------------------------------------------------
def ticks_from_raw(content: BagContent, contract: PolicyContract,
                   mapping: TopicMapping) -> list[tuple[int, TickRecord]]:
    """Rebuild control ticks at the contract's policy rate from raw ROS topics (observations through the contract)."""
    js = content.raw.get(mapping.joint_states, [])
    imu = content.raw.get(mapping.imu, [])
    missing = [t for t, msgs in ((mapping.joint_states, js), (mapping.imu, imu)) if not msgs]
    if missing:
        raise DatasetError(f"{content.path}: no messages on {', '.join(missing)} (needed by the contract); "
                           "set the topic mapping")
    bag_names = [mapping.joint_names.get(j, j) for j in contract.joint_names]
    names0 = list(js[0][1].name)
    absent = [j for j in bag_names if j not in names0]
    if absent:
        raise DatasetError(f"{content.path}: {mapping.joint_states} lacks contract joints {', '.join(absent)}")
    order = np.array([names0.index(j) for j in bag_names])
    cmd_order = None
    if mapping.command_joints:
        absent = [j for j in bag_names if j not in mapping.command_joints]
        if absent:
            raise DatasetError(f"topic mapping command_joints lacks contract joints {', '.join(absent)}")
        cmd_order = np.array([mapping.command_joints.index(j) for j in bag_names])
    t_js = np.array([t for t, _ in js])
    t_imu = np.array([t for t, _ in imu])
    cmds = content.raw.get(mapping.commands, [])
    t_cmd = np.array([t for t, _ in cmds])
    vel = content.raw.get(mapping.cmd_vel, []) if mapping.cmd_vel else []
    t_vel = np.array([t for t, _ in vel])
    period = int(round(1e9 / contract.policy_rate_hz))
    start = max(t_js[0], t_imu[0])
    grid = np.arange(start, t_js[-1] + 1, period)
    default = np.asarray(contract.default_joint_pos)
    ticks: list[tuple[int, TickRecord]] = []
    observer = contract.make_observer()
    step = ControlStep(contract)
    last_applied = np.zeros(contract.act_dim)
    prev_t: int | None = None
    for k, t in enumerate(grid):
        j = js[int(np.searchsorted(t_js, t, "right")) - 1][1]
        m = imu[int(np.searchsorted(t_imu, t, "right")) - 1][1]
        if list(j.name) != names0:
            order = np.array([list(j.name).index(n) for n in bag_names])
        eff = np.asarray(j.effort, np.float64)[order] if len(j.effort) == len(j.name) else None
        if eff is not None and not np.all(np.isfinite(eff)):
            eff = None  # a bad reading is no measurement: never a torque for the reward or system identification
        o = m.orientation
        state = RobotState(joint_pos=np.asarray(j.position)[order], joint_vel=np.asarray(j.velocity)[order],
                           base_quat=np.array([o.w, o.x, o.y, o.z]),
                           base_ang_vel=np.array([m.angular_velocity.x, m.angular_velocity.y, m.angular_velocity.z]),
                           base_lin_acc=np.array([m.linear_acceleration.x, m.linear_acceleration.y,
                                                  m.linear_acceleration.z]),
                           timestamp=t * 1e-9, joint_effort=eff)
        command = np.zeros(len(contract.command_names))
        if len(t_vel):
            i = int(np.searchsorted(t_vel, t, "right")) - 1
            if i >= 0:
                tw = vel[i][1]
                command[:3] = [tw.linear.x, tw.linear.y, tw.angular.z][:len(command)]
        # the targets held during [t, t + period): the last command sent before the next tick
        i = int(np.searchsorted(t_cmd, t + period, "left")) - 1 if len(t_cmd) else -1
        status = STATUS["policy"]
        if i < 0 or (prev_t is not None and t_cmd[i] <= prev_t):
            targets = default.copy() if i < 0 else np.asarray(cmds[i][1].data, float)
            status = STATUS["no_state"] if i < 0 else status
        else:
            targets = np.asarray(cmds[i][1].data, float)
        if cmd_order is not None:
            targets = targets[cmd_order]
        if targets.shape[0] != contract.num_joints:
            raise DatasetError(f"{content.path}: {mapping.commands} carries {targets.shape[0]} values, the contract "
                               f"has {contract.num_joints} joints (set command_joints in the topic mapping)")
        prev_t = int(t)
        obs = observer(state, command, last_applied)
        applied = step.encode(targets, state).copy()  # the commanded targets are the certified ones
        last_applied = applied
        ticks.append((int(t), TickRecord(seq=k, stamp=t * 1e-9, status=status, reason="", compute_time=0.0,
                                         state_age=0.0, state=state, command=command, observation=obs,
                                         action=applied.astype(np.float32), targets=targets, safe_targets=targets,
                                         safety={})))
    return ticks


# ---- ticks -> episodes -----------------------------------------------------------------------------------------
def split_segments(ticks: list[tuple[int, TickRecord]], contract: PolicyContract, gap_s: float,
                   max_tilt: float) -> list[tuple[list[tuple[int, TickRecord]], bool, str]]:
    """Cut a tick stream into (ticks, terminated, reason) segments of policy-controlled ticks."""
    out: list[tuple[list[tuple[int, TickRecord]], bool, str]] = []
    cur: list[tuple[int, TickRecord]] = []

    def close(terminated: bool, reason: str) -> None:
        nonlocal cur
        if len(cur) >= 2:
            out.append((cur, terminated, reason))
        cur = []

    for t_ns, rec in ticks:
        if rec.status != STATUS["policy"]:
            close(False, rec.status_name)
            continue
        if cur:
            prev_t, prev = cur[-1]
            if rec.seq <= prev.seq:
                close(False, "reset")
            elif rec.seq != prev.seq + 1:
                close(False, "dropped_ticks")
            elif (t_ns - prev_t) * 1e-9 > gap_s:
                close(False, "time_gap")
        cur.append((t_ns, rec))
        if -projected_gravity(np.asarray(rec.state.base_quat))[2] < np.cos(max_tilt):
            close(True, "fell")
    close(False, "end_of_log")
    return out


TERM_INPUTS: dict[str, str] = {
    "tracking_lin_vel": "base_pose", "lin_vel_z": "base_pose", "base_height": "base_pose",
    "torques": "joint_effort", "feet_air_time": "feet_contacts", "collision": "leg_contacts"}
"""Reward terms that need more than a tick's state, command, actions and safety telemetry -> the input (INPUTS).
Every other term of a legged task is rebuilt from the ticks alone."""
INPUTS: dict[str, str] = {
    "base_pose": "needs the base height and linear velocity: a ground-truth base pose topic (topic mapping "
                 "ground_truth: motion capture, the simulator's)",
    "joint_effort": "needs joint torques: the robot's efforts on every tick (this robot reports none)",
    "feet_contacts": "needs every foot's contact force on every tick of the episode (the swing time of each "
                     "touchdown): a contacts topic (topic mapping contacts) naming the task's feet",
    "leg_contacts": "needs every thigh's and calf's contact force on every tick: a contacts topic (topic mapping "
                    "contacts) naming the task's thighs and calves"}
"""What each input is and where a log carries it: the reason a term is left out when a log lacks it."""


class RewardModel:
    """The reward of the task a log came from, evaluated on logged ticks: the task's own terms, weights and reward
    config (robot_rl.rewards.weighted_sum), with the task config the policy was trained with
    (robot_rl.bundle.task_config_of).

    A term whose input (TERM_INPUTS) some segment lacks is left out of the whole dataset, not only of that segment,
    so every transition is scored by one reward function: `finish` sums the rebuilt terms again once every segment
    has been seen. `left_out` names those terms and why; fine-tuning online gives them weight 0 too."""

    def __init__(self, contract: PolicyContract) -> None:
        from robot_rl.bundle import task_config_of
        from robot_rl.sim.locomotion import LocomotionConfig
        from robot_rl.sim.manipulation import ManipulationConfig
        from robot_rl.sim.registry import get_task

        found = task_config_of(contract)
        if found is None:
            raise DatasetError(f"the contract's provenance names no registered task "
                               f"({contract.provenance.get('task', 'none')!r}): its reward cannot be rebuilt")
        name, cfg = found
        if not isinstance(cfg, (LocomotionConfig, ManipulationConfig)):
            raise DatasetError(f"task {name}: replay rebuilds the rewards of legged-robot and arm tasks only; this "
                               "task's reward needs what the log does not record")
        self.task = get_task(name).make_task(cfg)
        """Builds the reward view of logged transitions (Task.logged_view)."""
        self.max_tilt = self.task.fall_tilt
        """A segment ends as fallen beyond this tilt (a fixed-base arm never falls)."""
        self.only_positive = bool(self.task.only_positive)
        """The total is clipped at zero (legged tasks' `rewards.only_positive`; arm rewards are not clipped)."""
        self.contract = contract
        self.left_out: dict[str, str] = {}
        """Weighted term -> why it was left out (INPUTS), for every term some segment could not rebuild."""

    @property
    def weighted(self) -> list[str]:
        """The task's terms with a weight, in the order the reward sums them."""
        return [k for k, w in self.task.reward_weights.items() if w != 0.0]

    @property
    def rebuilt(self) -> list[str]:
        """The weighted terms every segment so far could rebuild."""
        return [k for k in self.weighted if k not in self.left_out]

    def needs(self, available: set[str]) -> tuple[list[str], list[str]]:
        """(terms used, terms skipped) of the task's weighted terms for a segment with the `available` INPUTS."""
        used: list[str] = []
        skipped: list[str] = []
        for name in self.weighted:
            need = TERM_INPUTS.get(name)
            (skipped if need is not None and need not in available else used).append(name)
        return used, skipped

    def __call__(self, seg: list[TickRecord], applied: np.ndarray, base_pos: np.ndarray | None,
                 base_lin_vel: np.ndarray | None, touch: dict[str, np.ndarray] | None = None
                 ) -> tuple[np.ndarray, dict[str, np.ndarray], list[str]]:
        """Rewards (T,) of the transitions of one segment, the weighted terms, and the terms used. `touch`: body
        name -> (T+1,) contact force [N] at each tick of the segment (the contacts topic), or None."""
        from robot_rl.rewards import weighted_sum
        from robot_rl.sim.task import LoggedSteps

        # a tick's state (and its efforts and contacts) is the one after the previous tick's action: what the
        # environment scores that action with
        nxt = seg[1:]
        t = len(nxt)
        n = self.contract.num_joints
        efforts = [r.state.joint_effort for r in nxt]
        has_effort = all(e is not None and len(e) == n and np.all(np.isfinite(e)) for e in efforts)
        steps = LoggedSteps(
            observations=np.stack([r.observation for r in nxt]),
            joint_pos=np.stack([r.state.joint_pos for r in nxt]), joint_vel=np.stack([r.state.joint_vel for r in nxt]),
            base_quat=np.stack([r.state.base_quat for r in nxt]),
            base_ang_vel=np.stack([r.state.base_ang_vel for r in nxt]), applied=applied,
            last_action=np.concatenate([np.zeros((1, applied.shape[1])), applied[:-1]]),
            policy_action=np.clip(np.stack([np.asarray(r.action, np.float64) for r in seg[:-1]]),
                                  -self.contract.action.clip, self.contract.action.clip),
            intervened=np.array([_intervened(r) for r in seg[:-1]], bool),
            command=np.stack([_pad3(r.command) for r in seg[:-1]]),
            joint_effort=np.stack([np.asarray(e, np.float64) for e in efforts]) if has_effort else None,
            base_pos=base_pos, base_lin_vel=base_lin_vel, touch=touch)
        view, available = self.task.logged_view(steps)
        used, skipped = self.needs(set(available))
        for name in skipped:
            self.left_out.setdefault(name, INPUTS[TERM_INPUTS[name]])
        weights = {k: (w if k in used else 0.0) for k, w in self.task.reward_weights.items()}
        _, terms = weighted_sum(self.task.reward_terms, weights, view, self.task.reward_config,
                                self.contract.policy_dt, t)
        return self.total(terms, t), terms, used

    def total(self, terms: dict[str, np.ndarray], t: int) -> np.ndarray:
        """The reward of `t` transitions from their weighted terms: the terms rebuilt for the whole dataset, summed
        in the task's order from zeros as weighted_sum does, clipped at zero with `rewards.only_positive`."""
        total = np.zeros(t)
        for name in self.rebuilt:
            total += terms[name]
        if self.only_positive:
            np.clip(total, 0.0, None, out=total)
        return total

    def finish(self, episodes: list[Episode]) -> None:
        """Score every episode with the terms rebuilt for the whole dataset: a term some segment could not rebuild
        is dropped from every episode's reward and infos."""
        for ep in episodes:
            for name in self.left_out:
                ep.infos.pop(f"reward.{name}", None)
            terms = {k[len("reward."):]: v[1:] for k, v in ep.infos.items() if k.startswith("reward.")}
            ep.rewards = self.total(terms, len(ep)).astype(np.float32)

    def report(self) -> dict[str, Any]:
        """The dataset's reward: which weighted terms were rebuilt, which were left out and why."""
        return {"rebuilt": self.rebuilt, "left_out": dict(sorted(self.left_out.items()))}


def _pad3(command: np.ndarray) -> np.ndarray:
    out = np.zeros(3)
    c = np.asarray(command, float)[:3]
    out[:len(c)] = c
    return out


PoseStream = tuple[np.ndarray, np.ndarray, np.ndarray, float]
"""(time on the recorder's clock [ns], position (P, 3), header stamp [ns]) of a pose topic, in order, and the
median spacing of its samples [ns]."""


def pose_stream(poses: list[tuple[int, Any]]) -> PoseStream:
    """A pose topic's messages as arrays, once per log (an hour-long log at 200 Hz has 720k poses: taking them apart
    again for every episode made the replay quadratic).

    Header stamps are used when they increase (else the log times): receive times bunch up and would turn small
    jitter into large velocities. Stamps on another clock (a simulator's time) are moved onto the recorder's by the
    smallest recent receive delay (a running minimum of log time - stamp, which follows a clock that drifts or
    jumps)."""
    log_p = np.array([t for t, _ in poses], np.float64)
    pos = np.array([[m.pose.position.x, m.pose.position.y, m.pose.position.z] for _, m in poses])
    head = np.array([m.header.stamp.sec * 1e9 + m.header.stamp.nanosec for _, m in poses], np.float64)
    order = np.argsort(log_p, kind="stable")
    log_p, pos, head = log_p[order], pos[order], head[order]
    if len(head) < 2 or not np.all(np.diff(head) > 0):
        head = log_p
    keep = np.concatenate([[True], np.diff(head) > 0])
    log_p, pos, head = log_p[keep], pos[keep], head[keep]
    lag = log_p - head
    if abs(float(np.median(lag))) < 0.25e9:  # header stamps on the recorder's clock
        t_p = head
    else:
        window = 21
        padded = np.pad(lag, window // 2, mode="edge")
        t_p = head + np.lib.stride_tricks.sliding_window_view(padded, window).min(axis=1)
    spacing = float(np.median(np.diff(t_p))) if len(t_p) > 1 else 0.0
    return t_p, pos, head, spacing


def _base_from_pose(times_ns: np.ndarray, stream: PoseStream, quats: np.ndarray,
                    state_stamps: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Base position and base-frame linear velocity at each tick from a pose topic (motion capture or simulator
    ground truth; `pose_stream`).

    The velocity is the central difference of the pose stream over the poses' own header stamps. Position and
    velocity are interpolated at the time the tick's state was measured (`state_stamps`, when they share the
    recorder's clock: within 0.25 s of the log times), else at the tick's log time, which is later than the
    measurement by the state's age, the inference and the transport."""
    t_p, pos, head, spacing = stream
    at_t = _measured_at(times_ns, state_stamps)
    # this episode's stretch of the stream and the samples just around it (a reset between episodes moves the base)
    margin = 0.99 * spacing
    inside = (t_p >= at_t.min() - margin) & (t_p <= at_t.max() + margin)
    if inside.sum() >= 2:
        t_p, pos, head = t_p[inside], pos[inside], head[inside]
    vel_p = np.gradient(pos, head * 1e-9, axis=0) if len(t_p) > 1 else np.zeros_like(pos)
    at = np.stack([np.interp(at_t, t_p, pos[:, i]) for i in range(3)], axis=1)
    vel_w = np.stack([np.interp(at_t, t_p, vel_p[:, i]) for i in range(3)], axis=1)
    from robot_rl.sim.step_kernels import quat_rotate_inverse

    return at, quat_rotate_inverse(quats, vel_w)


def _measured_at(times_ns: np.ndarray, state_stamps: np.ndarray | None) -> np.ndarray:
    """When each tick's state was measured [ns]: its state stamp when those share the recorder's clock (within
    0.25 s of the log times), else the tick's log time."""
    at_t = np.asarray(times_ns, np.float64)
    if state_stamps is not None and len(state_stamps) == len(at_t):
        st = np.asarray(state_stamps, np.float64) * 1e9
        if np.all(np.isfinite(st)) and abs(float(np.median(at_t - st))) < 0.25e9:
            return st
    return at_t


ContactStream = tuple[np.ndarray, list[str], np.ndarray]
"""(log time [ns] (M,), body names (k), contact forces [N] (M, k)) of a contacts topic, in order."""


def contact_stream(msgs: list[tuple[int, Any]]) -> ContactStream | None:
    """A contacts topic's messages as arrays: `std_msgs/Float64MultiArray`, one layout dimension whose label is a
    JSON list of body names and the data the contact (touch) force of each [N] (what logs.write_tick_bag records
    from the simulator's touch sensors). None when the messages do not name their bodies."""
    try:
        names = [str(b) for b in json.loads(msgs[0][1].layout.dim[0].label)]
    except (IndexError, ValueError, TypeError):
        return None
    rows = [(t, np.asarray(m.data, np.float64)) for t, m in msgs if len(m.data) == len(names)]
    rows.sort(key=lambda r: r[0])
    return (np.array([t for t, _ in rows], np.float64), names,
            np.stack([f for _, f in rows]) if rows else np.zeros((0, len(names))))


def _state_received(state_stamps: np.ndarray, states: list[tuple[int, Any]]) -> np.ndarray | None:
    """When the recorder received each tick's state [ns]: the log time of the recorded JointState whose header
    stamp is the tick's state stamp (within 1 us: the tick stores it as float seconds); a state the bag lacks (a
    best-effort message lost) gets its stamp plus the recorder's median delay. None when no tick's state was
    recorded."""
    rows = sorted((m.header.stamp.sec * 1_000_000_000 + m.header.stamp.nanosec, t) for t, m in states)
    if not rows:
        return None
    stamps, received = np.array([r[0] for r in rows], np.float64), np.array([r[1] for r in rows], np.float64)
    want = np.asarray(state_stamps, np.float64) * 1e9
    hi = np.clip(np.searchsorted(stamps, want), 0, len(stamps) - 1)
    lo = np.maximum(hi - 1, 0)
    k = np.where(np.abs(stamps[lo] - want) < np.abs(stamps[hi] - want), lo, hi)
    found = np.abs(stamps[k] - want) < 1e3
    if not found.any():
        return None
    delay = float(np.median(received[k][found] - want[found]))
    return np.where(found, received[k], want + delay)


def _contacts_at(times_ns: np.ndarray, stream: ContactStream, state_stamps: np.ndarray, period_ns: float,
                 states: list[tuple[int, Any]] | None = None) -> dict[str, np.ndarray] | None:
    """Body -> (T,) contact force at each tick; None when some tick has none within one policy period.

    A contacts message has no stamp, only the time the recorder received it. When the bag holds the robot's
    JointStates (a live recording), a tick's sample is the one received nearest to the JointState of the tick's
    state: the simulated robot publishes both together, and the recorder's delays (which reach several policy
    periods on a loaded machine) shift both alike. Otherwise (a bag written with the tick times) it is the latest
    sample at or before the tick's state."""
    t_c, names, forces = stream
    if len(t_c) == 0:
        return None
    received = _state_received(state_stamps, states) if states else None
    if received is not None:
        hi = np.clip(np.searchsorted(t_c, received), 0, len(t_c) - 1)
        lo = np.maximum(hi - 1, 0)
        i = np.where(np.abs(t_c[lo] - received) <= np.abs(t_c[hi] - received), lo, hi)
        if np.any(np.abs(t_c[i] - received) > period_ns):
            return None
        return {name: forces[i, j] for j, name in enumerate(names)}
    at_t = _measured_at(times_ns, state_stamps)
    i = np.searchsorted(t_c, at_t + 1.0, "right") - 1  # +1 ns: a sample stamped with the tick's own time counts
    if np.any(i < 0) or np.any(at_t - t_c[np.maximum(i, 0)] > period_ns):
        return None
    return {name: forces[i, j] for j, name in enumerate(names)}


def episodes_from_ticks(ticks: list[tuple[int, TickRecord]], contract: PolicyContract, reward: RewardModel,
                        gap_s: float, poses: list[tuple[int, Any]] | None = None,
                        contacts: list[tuple[int, Any]] | None = None, states: list[tuple[int, Any]] | None = None
                        ) -> tuple[list[Episode], dict[str, int]]:
    """Episodes (Minari layout) from a tick stream; also counts of why episodes ended. `poses`: a ground-truth
    base pose topic; `contacts`: a contacts topic (`contact_stream`); `states`: the recorded JointStates (when the
    recorder received each tick's state, to pair it with its contacts). Call `reward.finish` on all episodes of a
    dataset before writing them."""
    episodes: list[Episode] = []
    stream = pose_stream(poses) if poses else None
    touch_stream = contact_stream(contacts) if contacts else None
    reasons: dict[str, int] = {}
    codec = codec_for(contract)
    for seg_t, terminated, reason in split_segments(ticks, contract, gap_s, reward.max_tilt):
        reasons[reason] = reasons.get(reason, 0) + 1
        seg = [r for _, r in seg_t]
        times = np.array([t for t, _ in seg_t], dtype=np.float64)
        obs = np.stack([np.asarray(r.observation, np.float32) for r in seg])
        if obs.shape[1] != contract.obs_dim:
            raise DatasetError(f"ticks carry {obs.shape[1]} observation values, the contract has {contract.obs_dim}")
        safe = np.stack([np.asarray(r.safe_targets, float) for r in seg])
        applied = codec.encode(safe[:-1], _stack_state(seg[:-1]), np.zeros((len(seg) - 1, contract.act_dim)))
        quats = np.stack([r.state.base_quat for r in seg])
        base_pos = base_vel = None
        if stream is not None:
            base_pos, base_vel = _base_from_pose(times, stream, quats,
                                                 np.array([r.state.timestamp for r in seg], np.float64))
        stamps = np.array([r.state.timestamp for r in seg], np.float64)
        touch = _contacts_at(times, touch_stream, stamps, 1e9 * contract.policy_dt, states) \
            if touch_stream is not None else None
        rewards, terms, _ = reward(seg, applied, base_pos, base_vel, touch)
        t = len(seg) - 1
        term = np.zeros(t, bool)
        trunc = np.zeros(t, bool)
        term[-1] = terminated
        trunc[-1] = not terminated
        flags = np.array([_intervened(r) for r in seg])
        infos: dict[str, np.ndarray] = {
            "seq": np.array([r.seq for r in seg], np.int64), "stamp": np.array([r.stamp for r in seg]),
            "log_time_ns": times.astype(np.int64),
            "state_stamp": np.array([r.state.timestamp for r in seg], np.float64),
            "compute_time": np.array([r.compute_time for r in seg], np.float64),
            "joint_pos": np.stack([r.state.joint_pos for r in seg]),
            "joint_vel": np.stack([r.state.joint_vel for r in seg]),
            "base_quat": quats, "base_ang_vel": np.stack([r.state.base_ang_vel for r in seg]),
            "base_lin_acc": np.stack([r.state.base_lin_acc for r in seg]),
            "command": np.stack([np.asarray(r.command, float) for r in seg]),
            "policy_action": np.stack([np.asarray(r.action, np.float32) for r in seg]),
            "targets": np.stack([np.asarray(r.targets, float) for r in seg]), "safe_targets": safe,
            "intervened": flags}
        if base_pos is not None and base_vel is not None:
            infos["base_pos"], infos["base_lin_vel"] = base_pos, base_vel
        n = contract.num_joints
        if all(r.state.joint_effort is not None and len(r.state.joint_effort) == n for r in seg):
            effort = np.stack([np.asarray(r.state.joint_effort, np.float64) for r in seg])
            if np.any(effort):  # robots that do not report torques leave the field empty or zero
                infos["joint_effort"] = effort
        for name, values in terms.items():
            infos[f"reward.{name}"] = np.concatenate([[0.0], values])
        episodes.append(Episode(observations=obs, actions=applied.astype(np.float32),
                                rewards=rewards.astype(np.float32), terminations=term, truncations=trunc,
                                infos=infos))
    return episodes, reasons


def _stack_state(seg: list[TickRecord]) -> RobotState:
    s = seg[0].state
    return RobotState(joint_pos=np.stack([r.state.joint_pos for r in seg]),
                      joint_vel=np.stack([r.state.joint_vel for r in seg]), base_quat=s.base_quat,
                      base_ang_vel=s.base_ang_vel, base_lin_acc=s.base_lin_acc)


def _intervened(rec: TickRecord) -> bool:
    """Did the chain change this tick's targets: the control step's test on the logged targets (one tolerance)."""
    return bool(intervened(rec.targets, rec.safe_targets))


# ---- the command ---------------------------------------------------------------------------------------------
def replay(bags: Sequence[str | Path], out: str | Path, contract: PolicyContract | None = None,
           mapping: TopicMapping | None = None, recover: bool = False, gap_s: float = 0.2,
           robot: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Convert bags into one dataset folder at `out`; returns (path, summary). Nothing is written on error."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DatasetError(f"output {out} already exists")
    mapping = mapping or TopicMapping()
    raw_topics = {mapping.joint_states, mapping.imu, mapping.cmd_vel, mapping.commands, mapping.ground_truth,
                  mapping.contacts} - {""}
    episodes: list[Episode] = []
    summary: dict[str, Any] = {"bags": [], "ticks": 0, "end_reasons": {}, "recovered": {}}
    used_contract = contract
    reward: RewardModel | None = None
    for bag in bags:
        content = read_bag(bag, raw_topics, recover)
        bag_contract = PolicyContract.from_dict(json.loads(content.contract_json)) if content.contract_json else None
        c = contract or bag_contract
        if c is None:
            raise DatasetError(f"{bag}: no contract recorded in the bag; pass --bundle (or --contract)")
        if contract is not None and bag_contract is not None:
            try:
                contract.check_robot(bag_contract.robot, bag_contract.joint_names)
            except ContractError as exc:
                raise DatasetError(f"{bag}: recorded contract does not match the given one: {exc}") from None
        if used_contract is not None and used_contract is not c:
            try:
                used_contract.check_robot(c.robot, c.joint_names)
            except ContractError as exc:
                raise DatasetError(f"{bag}: from a different robot than the other bags: {exc}") from None
        if robot is not None and c.robot != robot:
            raise DatasetError(f"{bag}: recorded on robot '{c.robot}', not '{robot}'")
        used_contract = used_contract or c
        if reward is None:
            reward = RewardModel(c)
        if content.ticks:
            ticks = content.ticks
            names = None
        else:
            if contract is None and bag_contract is None:
                raise DatasetError(f"{bag}: raw-topic bag needs a contract (--bundle)")
            ticks = ticks_from_raw(content, c, mapping)
            names = "raw"
        poses = content.raw.get(mapping.ground_truth) if mapping.ground_truth else None
        contacts = content.raw.get(mapping.contacts) if mapping.contacts else None
        states = content.raw.get(mapping.joint_states) if mapping.joint_states else None
        eps, reasons = episodes_from_ticks(ticks, c, reward, gap_s, poses, contacts, states)
        episodes += eps
        for k, v in reasons.items():
            summary["end_reasons"][k] = summary["end_reasons"].get(k, 0) + v
        summary["ticks"] += len(ticks)
        summary["bags"].append({"path": str(bag), "ticks": len(ticks), "episodes": len(eps),
                                "source": names or "robot_rl ticks"})
        if content.recovered:
            summary["recovered"][str(bag)] = content.recovered
    assert used_contract is not None and reward is not None
    reward.finish(episodes)
    terms = reward.report()
    meta = {"sources": summary["bags"], "end_reasons": summary["end_reasons"], "recovered": summary["recovered"],
            REWARD_TERMS_KEY: terms, "task": used_contract.provenance.get("task", "")}
    write_dataset(out, episodes, used_contract, name=out.name, metadata=meta)
    summary.update({"episodes": len(episodes), "transitions": sum(len(e) for e in episodes),
                    "reward_terms": terms})
    return out, summary


def contract_of(source: str | Path) -> PolicyContract:
    """A contract from a bundle folder or a contract.json file."""
    source = Path(source)
    file = source / "contract.json" if source.is_dir() else source
    return PolicyContract.load(file)


__all__ = ["TopicMapping", "read_bag", "replay", "ticks_from_raw", "episodes_from_ticks",
           "RewardModel", "contract_of"]
