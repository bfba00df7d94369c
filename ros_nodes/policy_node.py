"""Policy node: a lifecycle node that runs a policy bundle behind the safety chain, in front of ros2_control.

configure  loads the bundle, builds the safety chain, warms the model up, and waits for the first JointState and Imu:
           missing contract joints, wrong message types or an unreadable bundle -> FAILURE, an ERROR diagnostic and
           a log line that names the problem; no command is ever published.
activate   starts the control loop: a timer at the contract's policy rate (`trigger:=timer`), or a tick on the first
           JointState of each policy period (`trigger:=state`, event-driven, lowest latency) with a timer watchdog.
           A `rate_hz` or declared `kp`/`kd` other than the contract's is refused at configure.
tick       RobotState from the latest JointState (joints BY NAME) + Imu, command from cmd_vel (Twist), then
           contract observer -> bundle.act -> the control step (robot_rl.control_step: clip, decode, certify,
           encode the applied action) -> publish Float64MultiArray (forward_command_controller `commands`,
           contract joint order) or JointTrajectory. For an MLP bundle everything before certify is one compiled
           call (`fused_tick`, robot_rl.fused), checked against the reference path at configure.
           `exploration_std` > 0 (data collection for offline RL and system identification; default 0) adds
           Gaussian noise to the action before the control step: the safety chain still certifies every target, and
           the recorded action is the noisy one the chain saw.
watchdog   state older than `stale_periods` policy periods, a non-finite or mis-sized message, or the e-stop:
           that tick publishes the chain's backup action (damping) and the diagnostics say why. The first policy
           tick after a backup stretch starts the observation history and every stateful filter (rate limiter,
           energy tank) again from the measured state.
exit       the last command is always the backup: on shutdown, deactivation, and an exception in any callback
           (logged; exit code 1).

Everything observation- or safety-related lives in robot_rl (contract, bundle, safety); this is an adapter.
"""

from __future__ import annotations

import gc
import math
import re
import time
import traceback
from typing import Any

import numpy as np
import rclpy
from builtin_interfaces.msg import Duration as DurationMsg
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import Twist
from rclpy.duration import Duration
from rclpy.lifecycle import LifecycleNode, LifecycleState, TransitionCallbackReturn
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy
from rclpy.wait_for_message import wait_for_message
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Bool, Float64MultiArray, MultiArrayDimension, String
from std_srvs.srv import Trigger
from trajectory_msgs.msg import JointTrajectory, JointTrajectoryPoint

from robot_rl.contract import PolicyContract
from robot_rl.control_step import CODECS, ControlStep
from robot_rl.errors import ContractError, RobotRLError
from robot_rl.observations import state_fields
from robot_rl.tick_record import STATUS, TickPacker, encode_labels

from .arm_io import task_inputs
from .convert import IMU_FIELDS, JointStateReader, TwistCommand, new_state, read_imu, targets_to_array
from .loopstats import LoopStats
from .qos import declare_qos, loud_sub, qos_param, quiet_pub
from .runtime import declare_realtime, init, spin

_NUMBER = re.compile(r"[0-9.]+")
EXPECTED_TYPES = {"joint_states_topic": "sensor_msgs/msg/JointState", "imu_topic": "sensor_msgs/msg/Imu",
                  "cmd_vel_topic": "geometry_msgs/msg/Twist"}
STATE_TRIGGER_EARLY = 0.25
"""trigger:=state: a JointState this fraction of a period before the next period starts still ticks it, so a robot
publishing at the policy rate with some jitter gets every tick; ticks are then at least 3/4 of a period apart, and
one per period on average (the grid advances a period per tick)."""


def check_rate_and_gains(contract: PolicyContract, rate_hz: float, kp: list[float] | None,
                         kd: list[float] | None) -> None:
    """Refuse a tick rate or declared PD gains other than the contract's, naming both values: the safety chain's
    per-tick steps (rate limit, CBF lookahead) and the observation history assume the contract's period, and the
    policy was trained with its gains. rate_hz 0 and unset gains are not declared."""
    if rate_hz and not math.isclose(rate_hz, contract.policy_rate_hz, rel_tol=1e-9):
        raise ContractError(f"parameter rate_hz {rate_hz:g} Hz does not match the contract's policy rate "
                            f"{contract.policy_rate_hz:g} Hz")
    for name, declared, wanted in (("kp", kp, contract.kp), ("kd", kd, contract.kd)):
        if declared is None:
            continue
        have, want = np.asarray(declared, float), np.asarray(wanted, float)
        if have.shape not in ((1,), want.shape) or not np.allclose(have, want, rtol=1e-9, atol=0.0):
            raise ContractError(f"parameter {name} {_gains(have)} does not match the contract's {name} "
                                f"{_gains(want)}")


def _gains(values: np.ndarray) -> str:
    return "[" + ", ".join(f"{v:g}" for v in values) + "]"


class PolicyNode(LifecycleNode):
    def __init__(self, node_name: str = "policy_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        p = self.declare_parameter
        p("bundle", "")
        p("runtime", "onnx")
        p("joint_states_topic", "/joint_states")
        p("imu_topic", "/imu")  # subscribed only when the contract observes the base (an arm needs no IMU)
        p("object_pose_topic", "/object_pose")  # PoseStamped inputs of an arm task's observation (ros_nodes.arm_io)
        p("goal_pose_topic", "/goal_pose")
        p("cmd_vel_topic", "/cmd_vel")
        p("estop_topic", "/estop")
        p("output_mode", "forward")  # forward: Float64MultiArray; trajectory: JointTrajectory
        p("command_topic", "/forward_position_controller/commands")
        p("trajectory_topic", "/joint_trajectory_controller/joint_trajectory")
        # timer: at the contract's policy rate; state: on the first JointState of each policy period (see _due)
        p("trigger", "timer")
        p("rate_hz", 0.0)  # 0 or the contract's policy rate; any other is refused (filter steps assume its period)
        # PD gains the robot runs (one per joint, or one for all), refused when they differ from the contract's
        p("kp", Parameter.Type.DOUBLE_ARRAY)  # unset: not declared, not checked
        p("kd", Parameter.Type.DOUBLE_ARRAY)
        p("stale_periods", 3.0)
        p("cmd_vel_timeout_s", 0.5)
        p("first_state_timeout_s", 10.0)
        p("warmup_iterations", 50)
        # observation, network and decode as one compiled call (robot_rl.fused) when the bundle is a plain MLP with
        # supported terms; false keeps observer -> bundle.act -> contract.act (same numbers, more calls per tick)
        p("fused_tick", True)
        p("publish_ticks", True)
        p("diagnostics_period_s", 1.0)
        # data collection: Gaussian noise (std, in action units) added to the policy's action before contract.act
        # and the safety chain, which still certify every target; 0 (the default) deploys the deterministic policy
        p("exploration_std", 0.0)
        p("exploration_seed", 0)
        for group in ("state", "cmd_vel", "command", "estop", "estop_in", "tick"):
            declare_qos(self, group)
        self._diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10, event_callbacks=quiet_pub())
        self._latency_pending: float | None = None
        """JointState stamp -> receipt of the message being handled, added to the stats after the command is out."""
        self._estop_pub = self.create_publisher(Bool, "~/estop_state", qos_param(self, "estop"),
                                                event_callbacks=quiet_pub())
        self.create_service(Trigger, "~/estop", self._on_estop)
        self.create_service(Trigger, "~/reset", self._on_reset)
        estop_topic = self.get_parameter("estop_topic").value
        self._estop_subs = [  # default-QoS (volatile) publishers, and latched ones from before this node started
            self.create_subscription(Bool, estop_topic, self._on_estop_msg, qos_param(self, "estop_in"),
                                     event_callbacks=loud_sub(self, estop_topic)),
            self.create_subscription(Bool, estop_topic, self._on_estop_msg, qos_param(self, "estop"),
                                     event_callbacks=loud_sub(self, estop_topic, "volatile publishers: read by the "
                                                                                 "volatile e-stop subscription"))]
        self.estopped = False
        self.estop_reason = ""
        self.refusal = ""
        self._resources: list[Any] = []
        self.stats = LoopStats(1.0, count_missed=False)
        self._contract_pub: Any = None
        self._timer: Any = None
        self._diag_timer: Any = None
        self._active = False
        self._publish_estop_state()

    # ---- lifecycle ---------------------------------------------------------------------------------------------
    def on_configure(self, state: LifecycleState) -> TransitionCallbackReturn:
        try:
            self._configure()
        except (RobotRLError, ValueError) as exc:
            self._release()
            self.refusal = str(exc)
            self.get_logger().error(f"refusing to configure: {exc}")
            self._publish_status(DiagnosticStatus.ERROR, f"refused: {exc}", [])
            return TransitionCallbackReturn.FAILURE
        self.refusal = ""
        self.get_logger().info(f"configured: bundle {self.bundle.path} ({self.contract.robot}, "
                               f"{self.contract.num_joints} joints, {self.rate_hz:g} Hz, trigger {self.trigger}, "
                               f"output {self.output_mode})")
        return TransitionCallbackReturn.SUCCESS

    def on_activate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self.chain.reset()
        self.observer.reset()
        self._take_estops()  # before the first tick: the executor would run a ready timer before the e-stop
        self.last_action[:] = 0.0
        self._resume = True
        self._last_tick = 0.0
        self._due = 0.0
        """When the next policy period starts (trigger:=state ticks from STATE_TRIGGER_EARLY of a period before)."""
        self.stats.reset()
        self._timer = self.create_timer(self.period, self._on_timer)
        self._diag_timer = self.create_timer(float(self.get_parameter("diagnostics_period_s").value),
                                             self._publish_diagnostics)
        self._active = True
        self.get_logger().info("activated")
        return super().on_activate(state)

    def on_deactivate(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._stop_timers()
        self.send_backup("deactivated")  # a forward_command_controller would hold the last policy target
        self._active = False
        self.get_logger().info("deactivated")
        return super().on_deactivate(state)

    def on_cleanup(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_shutdown(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._release()
        return TransitionCallbackReturn.SUCCESS

    def on_error(self, state: LifecycleState) -> TransitionCallbackReturn:
        self._active = False
        self._release()
        return TransitionCallbackReturn.SUCCESS

    # ---- configuration -----------------------------------------------------------------------------------------
    def _configure(self) -> None:
        from robot_rl.bundle import load_bundle
        from robot_rl.fused import FusedPolicy
        from robot_rl.safety import build_chain

        gp = self.get_parameter
        path = gp("bundle").value
        if not path:
            raise ContractError("parameter 'bundle' is not set (path to a policy bundle folder)")
        self.output_mode = gp("output_mode").value
        if self.output_mode not in ("forward", "trajectory"):
            raise ValueError(f"parameter output_mode '{self.output_mode}' is not one of forward, trajectory")
        self.trigger = gp("trigger").value
        if self.trigger not in ("timer", "state"):
            raise ValueError(f"parameter trigger '{self.trigger}' is not one of timer, state")
        self.bundle = load_bundle(path, runtime=gp("runtime").value)
        self.contract = c = self.bundle.contract
        if c.action.type not in CODECS:
            # codecs that need a robot model (ee_delta: the arm's kinematics) register where that model lives;
            # importing it only for such contracts keeps the arm model out of every legged robot's configure
            from robot_rl.sim import arm_task  # noqa: F401
        self.needs_imu = bool(state_fields([t.name for t in c.obs_terms]) & IMU_FIELDS)
        self.chain = build_chain(c)
        self.step = ControlStep(c, (), certify=self.chain.certify)  # a robot is a batch of one
        self.observer = c.make_observer()
        self.cmd = TwistCommand(c)
        check_rate_and_gains(c, float(gp("rate_hz").value), self.get_parameter_or("kp").value,
                             self.get_parameter_or("kd").value)
        self.rate_hz = c.policy_rate_hz
        self.period = 1.0 / self.rate_hz
        self.stale_after = float(gp("stale_periods").value) * self.period
        self.task_inputs = task_inputs(self, c, self.stale_after)
        self.cmd_timeout = float(gp("cmd_vel_timeout_s").value)
        n = c.num_joints
        self.state = new_state(n)
        self.last_action = np.zeros(c.act_dim, np.float32)
        self.explore_std = float(gp("exploration_std").value)
        if not np.isfinite(self.explore_std) or self.explore_std < 0.0:
            raise ValueError(f"parameter exploration_std {self.explore_std} must be >= 0")
        self._explore_rng = np.random.default_rng(int(gp("exploration_seed").value))
        self._explored = np.zeros(c.act_dim, np.float32)
        if self.explore_std > 0.0:
            self.get_logger().warning(f"exploration: noise std {self.explore_std:g} on every action (before the "
                                      "safety chain), for data collection")
        self.joints = JointStateReader(c.joint_names)
        # warm-up: first inferences allocate and JIT inside onnxruntime; the chain is reset before activation
        obs = np.zeros(c.obs_dim, np.float32)
        for _ in range(int(gp("warmup_iterations").value)):
            self.bundle.act(obs)
        self.fused = None
        if gp("fused_tick").value and self.explore_std == 0.0:
            # one compiled call from state to targets; checked against the bundle's own path before it is used
            try:
                self.fused = FusedPolicy.build(self.bundle)
            except ValueError as exc:  # the reference path stays correct; say why the fast one is not used
                self.get_logger().warning(f"fused tick not used: {exc}")
            if self.fused is not None:
                self.fused.decode(self.state, self.cmd.value, self.last_action)  # compile for these dtypes
        self.get_logger().info("tick: fused (observation, network and decode in one compiled call)" if self.fused
                               else "tick: observer -> bundle.act -> control step")
        self._check_topic_types()
        self._wait_first_messages(float(gp("first_state_timeout_s").value))
        self._dry_tick()
        self._await_latched_estop(float(gp("first_state_timeout_s").value))
        self.packer = TickPacker(n, len(c.command_names), c.obs_dim, c.act_dim)
        self._views = {name: self.packer.view(name) for name, _ in self.packer.labels}
        self._status_names = list(STATUS)
        self._create_io()

    def _dry_tick(self) -> None:
        """The whole tick once on the first measured state (nothing is published; activation resets what it
        touched): a bundle whose control step cannot run on this robot is refused here, not on the first tick."""
        try:
            self.task_inputs.fill(self.state)
            if self.fused is not None:
                clipped, targets = self.fused.decode(self.state, self.cmd.value, self.last_action)
            else:
                obs = self.observer(self.state, self.cmd.value, self.last_action)
                clipped, targets = self.step.decode(self.bundle.act(obs), self.state)
            safe = self.step.certify(self.state, clipped, targets)
            if not np.all(np.isfinite(safe)) or not np.all(np.isfinite(self.step.applied)):
                raise ValueError("non-finite targets or applied action")
        except Exception as exc:  # noqa: BLE001 - whatever the step raises is why this bundle cannot run here
            raise ContractError(f"the control step fails on the first measured state: {type(exc).__name__}: "
                                f"{exc}") from None
        self.chain.reset()
        self.observer.reset()

    def _check_topic_types(self) -> None:
        graph = dict(self.get_topic_names_and_types())
        for param, expected in EXPECTED_TYPES.items():
            topic = self.resolve_topic_name(self.get_parameter(param).value)
            types = graph.get(topic, [])
            if types and expected not in types:
                raise ContractError(f"topic {topic} carries {', '.join(types)}, expected {expected}")

    def _wait_first_messages(self, timeout: float) -> None:
        qos = qos_param(self, "state")
        js_topic = self.get_parameter("joint_states_topic").value
        ok, js = wait_for_message(JointState, self, js_topic, qos_profile=qos, time_to_wait=timeout)
        if not ok or js is None:
            self._check_topic_types()  # a publisher of the wrong type may have appeared meanwhile
            raise ContractError(f"no sensor_msgs/JointState on {js_topic} within {timeout:g} s "
                                "(check the topic name and the publisher's QoS against qos.state.*)")
        missing = self.joints.missing(list(js.name))
        if missing:
            raise ContractError(f"{js_topic} lacks contract joints: {', '.join(missing)} "
                                f"(message has: {', '.join(js.name)})")
        s = self.state
        fault = self.joints.read(js, s.joint_pos, s.joint_vel, s.joint_effort)
        if fault:
            raise ContractError(f"first message on {js_topic} is unusable: {fault}")
        self._imu_time = math.inf  # without an IMU only the joint states age
        if self.needs_imu:
            imu_topic = self.get_parameter("imu_topic").value
            ok, imu = wait_for_message(Imu, self, imu_topic, qos_profile=qos, time_to_wait=timeout)
            if not ok or imu is None:
                self._check_topic_types()
                raise ContractError(f"no sensor_msgs/Imu on {imu_topic} within {timeout:g} s "
                                    "(check the topic name and the publisher's QoS against qos.state.*)")
            fault = read_imu(imu, s.base_quat, s.base_ang_vel, s.base_lin_acc)
            if fault:
                raise ContractError(f"first message on {imu_topic} is unusable: {fault}")
            self._imu_time = time.monotonic()
        self.task_inputs.wait_first(timeout, qos)
        self._joint_time = time.monotonic()
        s.timestamp = js.header.stamp.sec + js.header.stamp.nanosec * 1e-9
        self.joint_fault = self.imu_fault = ""

    def _create_io(self) -> None:
        gp = self.get_parameter
        state_qos = qos_param(self, "state")
        cb = self._on_joint_state_tick if self.trigger == "state" else self._on_joint_state
        js, imu, vel = gp("joint_states_topic").value, gp("imu_topic").value, gp("cmd_vel_topic").value
        self._resources = [
            self.create_subscription(JointState, js, cb, state_qos, event_callbacks=loud_sub(self, js)),
            self.create_subscription(Twist, vel, self._on_cmd_vel, qos_param(self, "cmd_vel"),
                                     event_callbacks=loud_sub(self, vel)),
            *self.task_inputs.subscribe(state_qos),
        ]
        if self.needs_imu:
            self._resources.append(self.create_subscription(Imu, imu, self._on_imu, state_qos,
                                                            event_callbacks=loud_sub(self, imu)))
        if self.output_mode == "forward":
            self._cmd_pub = self.create_lifecycle_publisher(Float64MultiArray, gp("command_topic").value,
                                                            qos_param(self, "command"), event_callbacks=quiet_pub())
            self._cmd_msg = Float64MultiArray(check_fields=False)
        else:
            self._cmd_pub = self.create_lifecycle_publisher(JointTrajectory, gp("trajectory_topic").value,
                                                            qos_param(self, "command"), event_callbacks=quiet_pub())
            self._traj_msg = JointTrajectory(joint_names=list(self.contract.joint_names))
            sec = int(self.period)
            self._traj_dt = DurationMsg(sec=sec, nanosec=int((self.period - sec) * 1e9))
        self._tick_pub = None
        if gp("publish_ticks").value:
            self._tick_pub = self.create_lifecycle_publisher(Float64MultiArray, "~/tick", qos_param(self, "tick"),
                                                             event_callbacks=quiet_pub())
            self._tick_msg = Float64MultiArray(check_fields=False)
        contract_pub = self.create_publisher(String, "~/contract", qos_param(self, "estop"),
                                             event_callbacks=quiet_pub())
        contract_pub.publish(String(data=self.contract.to_json()))
        self._contract_pub = contract_pub
        self.stats = LoopStats(self.period, count_missed=self.trigger == "timer")
        self.seq = 0
        self.last_status = STATUS["policy"]
        self.last_reason = ""
        self.last_info: dict[str, Any] = {}
        self._cmd_stamp = -np.inf
        self._last_change_report = -np.inf
        self._report_pending = False
        self._recent: dict[str, str] = {}  # backup reasons since the last diagnostic, numbers masked as the key
        self.cmd.zero()

    def _release(self) -> None:
        self._stop_timers()
        for res in self._resources:
            self.destroy_subscription(res)
        self._resources = []
        for attr in ("_cmd_pub", "_tick_pub"):
            pub = getattr(self, attr, None)
            if pub is not None:
                self.destroy_lifecycle_publisher(pub)
                setattr(self, attr, None)
        if getattr(self, "_contract_pub", None) is not None:
            self.destroy_publisher(self._contract_pub)
            self._contract_pub = None
        self.bundle = None  # type: ignore[assignment]

    def _stop_timers(self) -> None:
        for attr in ("_timer", "_diag_timer"):
            timer = getattr(self, attr, None)
            if timer is not None:
                self.destroy_timer(timer)
                setattr(self, attr, None)

    # ---- inputs ------------------------------------------------------------------------------------------------
    def _on_joint_state(self, msg: JointState) -> None:
        """Readers validate before writing, so the state arrays are filled in place or left untouched."""
        now = time.monotonic()
        s = self.state
        fault = self.joints.read(msg, s.joint_pos, s.joint_vel, s.joint_effort)
        if fault:
            self.joint_fault = fault
            return
        self.joint_fault = ""
        stamp = msg.header.stamp
        s.timestamp = t = stamp.sec + stamp.nanosec * 1e-9
        self._joint_time = now
        if t > 0:  # recorded after the command is out (the tick's bookkeeping), not on the way to it
            self._latency_pending = time.time() - t

    def _on_joint_state_tick(self, msg: JointState) -> None:
        """trigger:=state: a tick on the first JointState of each policy period, never more often (a period in
        which no JointState arrives is skipped), so the rate limiter's per-tick step keeps the contract's rate."""
        self._on_joint_state(msg)
        if self._active and time.monotonic() >= self._due - STATE_TRIGGER_EARLY * self.period:
            self._tick()

    def _on_imu(self, msg: Imu) -> None:
        s = self.state
        fault = read_imu(msg, s.base_quat, s.base_ang_vel, s.base_lin_acc)
        self.imu_fault = fault or ""
        if not fault:
            self._imu_time = time.monotonic()

    def _on_cmd_vel(self, msg: Twist) -> None:
        if self.cmd.read(msg) is None:
            self._cmd_stamp = time.monotonic()

    # ---- e-stop --------------------------------------------------------------------------------------------------
    def latch_estop(self, reason: str) -> None:
        self.estopped = True
        self.estop_reason = reason
        if getattr(self, "chain", None) is not None:
            self.chain.estop(reason)
        self.get_logger().warning(f"e-stop latched: {reason}")
        self._publish_estop_state()

    def _on_estop(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.latch_estop("e-stop service")
        response.success, response.message = True, "e-stop latched: backup (damping) until ~/reset"
        return response

    def _on_reset(self, request: Trigger.Request, response: Trigger.Response) -> Trigger.Response:
        self.estopped = False
        self.estop_reason = ""
        if getattr(self, "chain", None) is not None:
            self.chain.reset()
        self._resume = True
        self.get_logger().info("e-stop reset")
        self._publish_estop_state()
        response.success, response.message = True, "e-stop released"
        return response

    def _on_estop_msg(self, msg: Bool) -> None:
        if msg.data and not self.estopped:
            self.latch_estop("e-stop topic")

    def _take_estops(self) -> int:
        """Handle the e-stop messages received but not yet dispatched by the executor; returns how many."""
        taken = 0
        for sub in self._estop_subs:
            with sub.handle:
                while (msg := sub.handle.take_message(sub.msg_type, sub.raw)) is not None:
                    self._on_estop_msg(msg[0])
                    taken += 1
        return taken

    def _await_latched_estop(self, timeout: float) -> None:
        """When a latched (transient-local) publisher is on the e-stop topic, take its value before the first tick:
        an e-stop asserted before this node started must hold from the first command."""
        topic = self.resolve_topic_name(self.get_parameter("estop_topic").value)
        latched = [i for i in self.get_publishers_info_by_topic(topic)
                   if i.qos_profile.durability == DurabilityPolicy.TRANSIENT_LOCAL]
        deadline = time.monotonic() + timeout
        while latched and not self._take_estops():
            if time.monotonic() > deadline:
                self.get_logger().warning(f"{topic}: a latched publisher sent nothing within {timeout:g} s")
                return
            time.sleep(0.005)

    def _publish_estop_state(self) -> None:
        self._estop_pub.publish(Bool(data=self.estopped))

    # ---- control loop -------------------------------------------------------------------------------------------
    def _on_timer(self) -> None:
        if self.trigger == "state" and time.monotonic() - self._last_tick < self.stale_after:
            return  # event-driven: the timer only guards against silence
        self._tick()

    def _watchdog(self, now: float) -> tuple[int, str]:
        if self.estopped:
            return STATUS["estop"], self.estop_reason
        if self.joint_fault:
            return STATUS["invalid"], self.joint_fault
        if self.imu_fault:
            return STATUS["invalid"], self.imu_fault
        kind, why = self.task_inputs.fault(now)
        if kind:
            return STATUS[kind], why
        age = now - min(self._joint_time, self._imu_time)
        if age > self.stale_after:
            return STATUS["stale"], f"state is {age * 1e3:.0f} ms old (limit {self.stale_after * 1e3:.0f} ms)"
        return STATUS["policy"], ""

    def _tick(self) -> None:
        """One control tick. Only what the command needs runs before it is published; bookkeeping runs after."""
        t0 = time.monotonic()
        wall = time.time()
        s = self.state
        status, reason = self._watchdog(t0)
        if t0 - self._cmd_stamp > self.cmd_timeout:
            self.cmd.zero()
        if status == STATUS["policy"]:
            if self._resume:  # leaving a backup stretch (or starting): nothing from before it shapes this tick
                self.observer.reset()
                for f in self.chain.filters:  # stateful filters start again from the measured state
                    f.reset()
                self._resume = False
            self.task_inputs.fill(s)
            if self.fused is not None:
                clipped, targets = self.fused.decode(s, self.cmd.value, self.last_action)
                obs, action = self.fused.obs, self.fused.action
            else:
                obs = self.observer(s, self.cmd.value, self.last_action)
                action = self.bundle.act(obs)
                if self.explore_std > 0.0:  # data collection (exploration_std): the chain below certifies it
                    self._explore_rng.standard_normal(dtype=np.float32, out=self._explored)
                    self._explored *= self.explore_std
                    self._explored += action
                    action = self._explored
                clipped, targets = self.step.decode(action, s)
            safe = self.step.certify(s, clipped, targets)
            info = self.step.info
        else:
            safe = targets = self.chain.backup(s)
            info = {}
            self._resume = True
        self._publish_command(safe)
        v = self._views
        if status == STATUS["policy"]:
            # the last_action term sees the applied action (certified targets), exactly as in training
            self.last_action[:] = self.step.applied
            v["observation"][:] = obs
            v["action"][:] = action
        else:
            v["observation"][:] = 0.0
            v["action"][:] = 0.0
        v["targets"][:] = targets
        self._last_tick = t0
        self._due = max(self._due, t0) + self.period
        compute = time.monotonic() - t0
        if self._latency_pending is not None:
            self.stats.latency.add(self._latency_pending)
            self._latency_pending = None
        self.stats.tick(t0, compute, status)
        changed = status != self.last_status
        self.last_status, self.last_reason, self.last_info = status, reason, info
        if self._tick_pub is not None:
            v["seq"][0], v["stamp"][0], v["status"][0] = self.seq, wall, status
            v["compute_time"][0], v["state_age"][0] = compute, t0 - min(self._joint_time, self._imu_time)
            v["state_stamp"][0] = s.timestamp
            v["joint_pos"][:], v["joint_vel"][:], v["joint_effort"][:] = s.joint_pos, s.joint_vel, s.joint_effort
            v["base_quat"][:], v["base_ang_vel"][:], v["base_lin_acc"][:] = s.base_quat, s.base_ang_vel, s.base_lin_acc
            v["command"][:] = self.cmd.value
            v["safe_targets"][:] = safe
            if self.packer.pack(info, reason):
                size = int(self.packer.buffer.shape[0])
                self._tick_msg.layout.dim = [MultiArrayDimension(label=encode_labels(self.packer.labels),
                                                                 size=size, stride=size)]
            self._tick_msg.data = self.packer.buffer
            self._tick_pub.publish(self._tick_msg)
        self.seq += 1
        self._report_pending |= changed
        if status != STATUS["policy"] and len(self._recent) < 8:
            self._recent.setdefault(_NUMBER.sub("#", reason), f"{self._status_names[status]}: {reason}")
        if self._report_pending and t0 - self._last_change_report >= 0.2:  # <= 5 reports/s; ticks carry the reason
            self._last_change_report = t0
            self._report_pending = False
            self.get_logger().warning(f"tick {self.seq - 1}: {self._status_names[status]} {reason}".rstrip())
            self._publish_diagnostics()

    def send_backup(self, reason: str) -> bool:
        """Publish the chain's backup for the latest measured state (damping: hold it) as the last command of an
        active node, and log why; False when the node is not commanding the robot. Never raises."""
        if not self._active:
            return False
        try:
            self._publish_command(self.chain.backup(self.state))
            # delivered before the caller tears the publisher down (a destroyed writer drops what is unsent)
            self._cmd_pub.wait_for_all_acked(Duration(seconds=0.5))
        except Exception as exc:  # noqa: BLE001 - the node is going down either way; say what failed
            self.get_logger().error(f"{reason}; could not publish the backup: {type(exc).__name__}: {exc}")
            return False
        self.get_logger().warning(f"{reason}: published the backup ({self.chain.backup_mode}) as the last command")
        return True

    def _publish_command(self, targets: np.ndarray) -> None:
        if self.output_mode == "forward":
            self._cmd_msg.data = targets_to_array(targets)
            self._cmd_pub.publish(self._cmd_msg)
        else:
            point = JointTrajectoryPoint(positions=targets_to_array(targets), time_from_start=self._traj_dt)
            self._traj_msg.points = [point]
            self._cmd_pub.publish(self._traj_msg)

    # ---- diagnostics --------------------------------------------------------------------------------------------
    def _publish_status(self, level: bytes | int, message: str, values: list[tuple[str, str]]) -> None:
        status = DiagnosticStatus(level=bytes([level]) if isinstance(level, int) else level,
                                  name=f"{self.get_name()}: policy loop", message=message,
                                  hardware_id=getattr(getattr(self, "contract", None), "robot", ""),
                                  values=[KeyValue(key=k, value=v) for k, v in values])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self._diag_pub.publish(msg)

    def _publish_diagnostics(self, level: bytes | int | None = None) -> None:
        names = list(STATUS)
        status = self.last_status
        if level is None:
            level = DiagnosticStatus.OK if status == STATUS["policy"] else DiagnosticStatus.WARN
        path = "fused" if getattr(self, "fused", None) is not None else "reference"
        values = [("status", names[status]), ("reason", self.last_reason), ("seq", str(self.seq)),
                  ("estop", str(self.estopped).lower()), ("tick_path", path)] + self.stats.key_values(self.last_info)
        message = "running policy" if status == STATUS["policy"] else \
            f"backup action: {names[status]} {self.last_reason}"
        if self._recent:  # a report covers every backup reason since the previous one (reports are rate-limited)
            level = DiagnosticStatus.WARN if level == DiagnosticStatus.OK else level
            message += "; backups since last report: " + "; ".join(self._recent.values())
            self._recent.clear()
        self._publish_status(level, message, values)


def main(args: list[str] | None = None) -> None:
    """Run the node; `-p autostart:=true` configures and activates it right away (what `robot-rl deploy` uses)."""
    init(args)
    run(PolicyNode())


def run(node: PolicyNode) -> None:
    """Declare the process parameters (`autostart`, `executor`, real-time knobs), configure and activate with
    `autostart`, then spin. The last command is always the backup: on a requested shutdown (exit 0) and when a
    callback raised (the tick, onnxruntime, a compiled kernel: exit 1, after the log says why)."""
    node.declare_parameter("autostart", False)
    node.declare_parameter("executor", "single")
    _pm_qos = declare_realtime(node)  # held until exit
    if node.get_parameter("autostart").value:
        ok = node.trigger_configure() == TransitionCallbackReturn.SUCCESS
        if not ok or node.trigger_activate() != TransitionCallbackReturn.SUCCESS:
            node.destroy_node()
            rclpy.try_shutdown()
            raise SystemExit(3)
    # everything allocated so far (modules, bundle, chain) moves out of the collector's generations: the cyclic GC
    # then only scans what ticks allocate, which keeps its pauses short at 500 Hz
    gc.freeze()

    def last_command(failure: BaseException | None) -> None:
        if failure is not None:
            node.get_logger().error("".join(traceback.format_exception(failure)).rstrip())
        node.send_backup("shutdown" if failure is None else f"stopping after {type(failure).__name__}: {failure}")

    try:
        spin(node, node.get_parameter("executor").value, on_exit=last_command)
    except Exception:  # noqa: BLE001 - logged, and the backup sent, by last_command
        raise SystemExit(1) from None
    del _pm_qos


if __name__ == "__main__":
    main()
