"""Logs without a robot: run a policy on the simulated robot (robot_rl.sim.make_robot_sim) through the same
path as the ROS 2 policy node (observer -> policy -> robot_rl.control_step -> held PD targets) and
record each tick as the recorder does (`robot_rl_msgs/msg/ControlTick`, robot_rl.tick_record), optionally with a
ground-truth base pose and the bodies' contact forces. Used by tests and benchmarks to make small bags, and by
system identification tests to make data with hidden physical parameters.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from robot_rl.contract import PolicyContract
from robot_rl.control_step import ControlStep
from robot_rl.tick_record import STATUS, TICK_TYPE, TickRecord, effort_or_empty, flatten_info, to_bag_message, typestore

GROUND_TRUTH_TOPIC = "/sim_robot/ground_truth"
CONTACTS_TOPIC = "/sim_robot/contacts"
"""Contact forces of the simulated robot's bodies (std_msgs/Float64MultiArray; robot_rl.replay.contact_stream)."""
TICK_TOPIC = "/robot_rl/ticks"


@dataclass
class SimLog:
    """Ticks (log time ns, record), the true base pose per tick and, when recorded, the contact forces."""

    ticks: list[tuple[int, TickRecord]] = field(default_factory=list)
    base_pos: list[np.ndarray] = field(default_factory=list)
    contact_bodies: list[str] = field(default_factory=list)
    """Bodies whose contact forces `contacts` holds (empty: none recorded)."""
    contacts: list[np.ndarray] = field(default_factory=list)
    """Per tick, the contact (touch sensor) force [N] of each of `contact_bodies` in the tick's state."""


def touch_sensors(model: Any) -> tuple[list[str], np.ndarray]:
    """(body names, sensordata columns) of a robot model's `<body>_touch` sensors: what a log records as the
    contact forces of its bodies (the feet-air-time and collision rewards read them)."""
    from robot_rl.sim.mjmodel import SensorSlices

    sensors = SensorSlices.of(model).slices
    touch = {name.removesuffix("_touch"): sl.start for name, sl in sensors.items() if name.endswith("_touch")}
    return list(touch), np.array(list(touch.values()), np.int64)


def simulate_ticks(contract: PolicyContract, policy: Callable[[np.ndarray], np.ndarray], n_ticks: int,
                   params: dict[str, Any] | None = None, command: np.ndarray | None = None, safety: bool = True,
                   start_ns: int = 1_000_000_000_000, seed: int = 0, reset_every: int = 0) -> SimLog:
    """Run `policy(raw obs) -> action` for n_ticks control ticks on the simulated robot with hidden `params`.

    `reset_every` > 0 resets the robot (and restarts the sequence numbers, like a restarted policy node) every that
    many ticks; a fall also resets it.
    """
    from robot_rl.sim import make_robot_sim
    from robot_rl.sim.env import load_safety_chain
    from robot_rl.state import tilt_angle

    sim = make_robot_sim(contract.robot, physics_dt=1.0 / contract.physics_rate_hz, params=params)
    chain = load_safety_chain(contract) if safety else None
    step = ControlStep(contract, (), certify=chain.certify if chain is not None else None)
    observer = contract.make_observer()
    cmd = np.zeros(len(contract.command_names)) if command is None else np.asarray(command, float)
    period_ns = int(round(1e9 / contract.policy_rate_hz))
    bodies, columns = touch_sensors(sim.model)
    log = SimLog(contact_bodies=bodies)
    last: np.ndarray = np.zeros(contract.act_dim)
    seq = 0
    state = sim.reset(seed=seed)
    for k in range(n_ticks):
        if (reset_every and k and k % reset_every == 0) or float(tilt_angle(np.asarray(state.base_quat))) > 1.2:
            state = sim.reset(seed=seed + k)
            observer.reset()
            if chain is not None:
                chain.reset()
            last = np.zeros(contract.act_dim)
            seq = 0
        obs = observer(state, cmd, last)
        action = np.asarray(policy(obs), np.float64).reshape(-1)
        step(action, state)
        targets, safe, info = step.targets.copy(), step.safe.copy(), step.info
        t_ns = start_ns + k * period_ns
        num, text = flatten_info(info, prefix="")
        tel: dict[str, Any] = {key: v for key, v in num}
        tel.update(dict(t.split("=", 1) for t in text))
        rec = TickRecord(seq=seq, stamp=t_ns * 1e-9, status=STATUS["policy"], reason="", compute_time=0.0,
                         state_age=0.0, state=state, command=cmd.copy(), observation=obs,
                         action=action.astype(np.float32), targets=np.asarray(targets, float),
                         safe_targets=np.asarray(safe, float), safety=tel)
        log.ticks.append((t_ns, rec))
        log.base_pos.append(np.asarray(state.base_pos, float).copy())
        log.contacts.append(sim.data.sensordata[columns].copy())  # evaluated at this state by sim.state()
        last = step.applied.copy()
        state = sim.step(safe, n=contract.decimation)
        seq += 1
    return log


def env_ticks(env: Any, policy: Callable[[np.ndarray], np.ndarray], n_ticks: int,
              start_ns: int = 1_000_000_000_000) -> tuple[SimLog, list[dict[str, float]]]:
    """Run world 0 of a one-world VecEnv (robot_rl.sim.make_vec_env) for `n_ticks` ticks or until its episode ends,
    and log each tick as the policy node records it (state seen, observation, raw action, decoded and certified
    targets, telemetry, the true base pose, the contact force of every body with a `<body>_touch` sensor); also
    each step's reward terms as the environment scored them."""
    from robot_rl.state import RobotState

    period_ns = int(round(1e9 * env.contract.policy_dt))
    bodies, columns = touch_sensors(env.model(0))
    log = SimLog(contact_bodies=bodies)
    scored: list[dict[str, float]] = []
    obs = env.reset(seed=0)
    for k in range(n_ticks):
        t_ns = start_ns + k * period_ns
        seen, true = env.observed_state, env.get_state()
        state = RobotState(joint_pos=seen.joint_pos[0].copy(), joint_vel=seen.joint_vel[0].copy(),
                           base_quat=seen.base_quat[0].copy(), base_ang_vel=seen.base_ang_vel[0].copy(),
                           base_lin_acc=seen.base_lin_acc[0].copy(), timestamp=t_ns * 1e-9,
                           joint_effort=None if true.joint_effort is None else true.joint_effort[0].copy())
        command, observation = env.commands[0], np.asarray(obs[0], np.float32).copy()
        log.contacts.append(env.sensordata()[0, -1, columns])  # the sensors of the state just observed
        action = np.asarray(policy(observation), np.float32)  # the log keeps float32 actions, as the node's
        obs, _, terminated, truncated, info = env.step(action.astype(np.float64)[None])
        step = env.control_step
        num, text = flatten_info({key: np.asarray(v)[0] for key, v in step.info.items()}, prefix="")
        tel: dict[str, Any] = {key: v for key, v in num}
        tel.update(dict(t.split("=", 1) for t in text))
        log.ticks.append((t_ns, TickRecord(seq=k, stamp=t_ns * 1e-9, status=STATUS["policy"], reason="",
                                           compute_time=0.0, state_age=0.0, state=state, command=command,
                                           observation=observation,
                                           action=action, targets=step.targets[0].copy(),
                                           safe_targets=step.safe[0].copy(), safety=tel)))
        log.base_pos.append(np.asarray(true.base_pos)[0].copy())
        scored.append({name: float(v[0]) for name, v in info["reward_terms"].items()})
        if terminated[0] or truncated[0]:
            break
    return log, scored


def write_tick_bag(path: str | Path, log: SimLog, contract: PolicyContract,
                   storage: Literal["mcap", "sqlite3"] = "mcap", ground_truth: bool = True,
                   contacts: bool = True) -> Path:
    """A rosbag2 folder with the ticks, the contract (as the policy node publishes it), the base pose and the
    contact forces when the log has them (`ground_truth`, `contacts`: False leaves them out)."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore()
    types = store.types
    path = Path(path)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    with Writer(path, version=9, storage_plugin=plugin) as writer:
        tick_conn = writer.add_connection(TICK_TOPIC, TICK_TYPE, typestore=store)
        c_conn = writer.add_connection("/policy_node/contract", "std_msgs/msg/String", typestore=store)
        first = log.ticks[0][0] if log.ticks else 0
        writer.write(c_conn, first, store.serialize_cdr(types["std_msgs/msg/String"](data=contract.to_json()),
                                                         "std_msgs/msg/String"))
        gt_conn = writer.add_connection(GROUND_TRUTH_TOPIC, "geometry_msgs/msg/PoseStamped", typestore=store) \
            if ground_truth else None
        array = "std_msgs/msg/Float64MultiArray"
        touch_conn = writer.add_connection(CONTACTS_TOPIC, array, typestore=store) \
            if contacts and log.contact_bodies else None
        dim = types["std_msgs/msg/MultiArrayDimension"](label=json.dumps(log.contact_bodies),
                                                        size=len(log.contact_bodies), stride=len(log.contact_bodies))
        layout = types["std_msgs/msg/MultiArrayLayout"](dim=[dim], data_offset=0)
        for k, ((t_ns, rec), pos) in enumerate(zip(log.ticks, log.base_pos)):
            writer.write(tick_conn, t_ns, store.serialize_cdr(to_bag_message(store, rec, contract.joint_names),
                                                              TICK_TYPE))
            if touch_conn is not None:
                msg = types[array](layout=layout, data=np.asarray(log.contacts[k], np.float64))
                writer.write(touch_conn, t_ns, store.serialize_cdr(msg, array))
            if gt_conn is not None:
                writer.write(gt_conn, t_ns, store.serialize_cdr(_pose(types, t_ns, pos, rec.state.base_quat),
                                                                "geometry_msgs/msg/PoseStamped"))
    return path


def _pose(types: Any, t_ns: int, pos: np.ndarray, quat: np.ndarray) -> Any:
    stamp = types["builtin_interfaces/msg/Time"](sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)
    header = types["std_msgs/msg/Header"](stamp=stamp, frame_id="world")
    p = types["geometry_msgs/msg/Point"](x=float(pos[0]), y=float(pos[1]), z=float(pos[2]))
    q = types["geometry_msgs/msg/Quaternion"](w=float(quat[0]), x=float(quat[1]), y=float(quat[2]), z=float(quat[3]))
    return types["geometry_msgs/msg/PoseStamped"](header=header, pose=types["geometry_msgs/msg/Pose"](position=p,
                                                                                                    orientation=q))


def a1_contract() -> PolicyContract:
    """The a1_walk task's contract (no normalization statistics)."""
    from robot_rl.sim.registry import get_task

    spec = get_task("a1_walk")
    return spec.make_task(spec.config_cls()).contract


def write_raw_bag(path: str | Path, log: SimLog, contract: PolicyContract, joint_names: list[str] | None = None,
                  storage: Literal["mcap", "sqlite3"] = "mcap") -> Path:
    """A bag with only standard ROS topics (what `ros2 bag record` gives on any ros2_control robot):
    /joint_states and /imu at the tick times, /cmd_vel, and the certified targets on the forward controller's
    commands topic shortly after each tick. `joint_names` renames the joints as the robot's driver would."""
    from rosbags.rosbag2 import StoragePlugin, Writer

    store = typestore()
    ty = store.types
    names = list(joint_names or contract.joint_names)
    plugin = StoragePlugin.MCAP if storage == "mcap" else StoragePlugin.SQLITE3
    topics = {"/joint_states": "sensor_msgs/msg/JointState", "/imu": "sensor_msgs/msg/Imu",
              "/cmd_vel": "geometry_msgs/msg/Twist",
              "/forward_position_controller/commands": "std_msgs/msg/Float64MultiArray"}
    with Writer(Path(path), version=9, storage_plugin=plugin) as writer:
        conns = {t: writer.add_connection(t, m, typestore=store) for t, m in topics.items()}

        def put(topic: str, t_ns: int, msg: Any) -> None:
            writer.write(conns[topic], t_ns, store.serialize_cdr(msg, topics[topic]))

        for t_ns, rec in log.ticks:
            s = rec.state
            stamp = ty["builtin_interfaces/msg/Time"](sec=t_ns // 1_000_000_000, nanosec=t_ns % 1_000_000_000)
            header = ty["std_msgs/msg/Header"](stamp=stamp, frame_id="base")
            effort = effort_or_empty(s.joint_effort)  # none measured: empty, as JointState says
            put("/joint_states", t_ns - 1000, ty["sensor_msgs/msg/JointState"](
                header=header, name=names, position=np.asarray(s.joint_pos, float),
                velocity=np.asarray(s.joint_vel, float), effort=effort))
            v3 = ty["geometry_msgs/msg/Vector3"]
            q = ty["geometry_msgs/msg/Quaternion"](w=float(s.base_quat[0]), x=float(s.base_quat[1]),
                                                   y=float(s.base_quat[2]), z=float(s.base_quat[3]))
            cov = np.zeros(9)
            put("/imu", t_ns - 1000, ty["sensor_msgs/msg/Imu"](
                header=header, orientation=q, orientation_covariance=cov,
                angular_velocity=v3(x=float(s.base_ang_vel[0]), y=float(s.base_ang_vel[1]), z=float(s.base_ang_vel[2])),
                angular_velocity_covariance=cov,
                linear_acceleration=v3(x=float(s.base_lin_acc[0]), y=float(s.base_lin_acc[1]),
                                       z=float(s.base_lin_acc[2])), linear_acceleration_covariance=cov))
            c = np.zeros(3)
            c[:len(rec.command)] = np.asarray(rec.command)[:3]
            put("/cmd_vel", t_ns - 500, ty["geometry_msgs/msg/Twist"](linear=v3(x=c[0], y=c[1], z=0.0),
                                                                      angular=v3(x=0.0, y=0.0, z=c[2])))
            layout = ty["std_msgs/msg/MultiArrayLayout"](dim=[], data_offset=0)
            put("/forward_position_controller/commands", t_ns + 2_000_000, ty["std_msgs/msg/Float64MultiArray"](
                layout=layout, data=np.asarray(rec.safe_targets, float)))
    return Path(path)
