"""Simulated robot node: MuJoCo or PyBullet behind ros2_control's topics, a stand-in for real hardware.

It steps `robot_rl.sim.make_robot_sim` (physics + the PD / actuator model from controllers/) in real time, publishes
`/joint_states` and the IMU, and consumes the same command topics a ros2_control robot would: a forward_command
controller's `commands` (std_msgs/Float64MultiArray in `command_joints` order) or a JointTrajectory (joints by name).

Modes: `hold` (before the first command: PD towards the reset pose), `active` (latest command held between messages),
`timeout` (no command for `command_timeout_periods` command periods: damping, kp = 0 so the torque is -kd * qdot).
Physical parameters can differ from training (`params` JSON / `params_file`), which makes it a "real" robot for
sim-to-real rehearsal. Ground truth (simulated time in the stamp) goes to `~/ground_truth`; a legged robot's body
contact forces (its `<body>_touch` sensors, what replay rebuilds feet air time and collisions from) go to
`~/contacts` with every state: std_msgs/Float64MultiArray, one layout dimension labelled with the JSON list of bodies.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import rclpy
import yaml
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus, KeyValue
from geometry_msgs.msg import PoseStamped
from rclpy.node import Node
from sensor_msgs.msg import Imu, JointState
from std_msgs.msg import Float64MultiArray, MultiArrayDimension
from trajectory_msgs.msg import JointTrajectory

from robot_rl.errors import RobotRLError
from robot_rl.logs import touch_sensors
from robot_rl.state import tilt_angle

from .convert import fill_imu, fill_joint_state
from .qos import declare_qos, qos_param
from .runtime import init, spin

MODES = ("hold", "active", "timeout")


class SimRobotNode(Node):
    def __init__(self, node_name: str = "sim_robot", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        p = self.declare_parameter
        p("robot", "a1")
        # an arm task whose scene (arm, table, object, goal) to simulate instead of the robot alone, e.g.
        # panda_pick_place: the node then publishes the object and goal poses as a perception node would, no IMU
        p("scene_task", "")
        p("object_pose_topic", "/object_pose")
        p("goal_pose_topic", "/goal_pose")
        p("backend", "mujoco")
        p("seed", 0)
        p("params", "")  # JSON object for SimRobot.apply_params: friction, added_mass, com_offset, motor_strength,
        #                  kp_scale, kd_scale, latency
        p("params_file", "")  # the same as a YAML/JSON file
        p("randomize_seed", -1)  # >= 0: draw physical params from `randomize_task`'s training ranges (then `params`)
        p("randomize_task", "a1_walk")
        p("joint_states_topic", "/joint_states")
        p("imu_topic", "/imu")
        p("command_topic", "/forward_position_controller/commands")
        p("trajectory_topic", "/joint_trajectory_controller/joint_trajectory")
        p("command_joints", [""])  # order of Float64MultiArray commands; default: the simulator's joint order
        p("physics_rate_hz", 0.0)  # 0: the simulator's default; `robot-rl deploy` passes the contract's rate
        p("kp", 0.0)  # PD gains of the "hardware" (0: the simulator's defaults); deploy passes the contract's
        p("kd", 0.0)
        p("steps_per_publish", 1)  # physics steps per JointState/Imu publication
        p("max_catch_up_steps", 8)  # after a stall, step at most this many extra physics steps to rejoin wall time
        p("command_rate_hz", 50.0)
        p("command_timeout_periods", 5.0)
        p("ground_truth_rate_hz", 50.0)
        p("fall_height", 0.12)
        declare_qos(self, "state")
        declare_qos(self, "command")
        gp = self.get_parameter
        from robot_rl.sim import make_robot_sim

        params = self._randomized(gp("randomize_task").value, int(gp("randomize_seed").value))
        params.update(self._load_params(gp("params").value, gp("params_file").value))
        options: dict[str, Any] = {}
        if float(gp("physics_rate_hz").value) > 0:
            options["physics_dt"] = 1.0 / float(gp("physics_rate_hz").value)
        for gain in ("kp", "kd"):
            if float(gp(gain).value) > 0:
                options[gain] = float(gp(gain).value)
        scene = str(gp("scene_task").value)
        if scene:
            from robot_rl.sim.arm_sim import ArmSceneSim

            if gp("backend").value != "mujoco":
                raise ValueError(f"scene_task {scene}: arm scenes are simulated with MuJoCo only, not "
                                 f"{gp('backend').value}")
            self.sim = ArmSceneSim(scene, seed=int(gp("seed").value))
            self.sim.apply_params(params)
        else:
            self.sim = make_robot_sim(gp("robot").value, backend=gp("backend").value, params=params or None,
                                      **options)
        engine = getattr(self.sim, "backend", "pybullet" if "pybullet" in type(self.sim).__module__ else "mujoco")
        if engine != gp("backend").value:  # never run another engine than the one asked for, silently
            raise ValueError(f"make_robot_sim(backend='{gp('backend').value}') returned a {engine} simulator "
                             f"({type(self.sim).__module__}.{type(self.sim).__name__})")
        self.kp, self.kd = np.array(self.sim.kp), np.array(self.sim.kd)
        self.sim.reset(seed=int(gp("seed").value))
        self.joint_names = list(self.sim.joint_names)
        n = len(self.joint_names)
        order = [j for j in gp("command_joints").value if j]
        if order:
            unknown = [j for j in order if j not in self.joint_names]
            if unknown or len(order) != n:
                raise ValueError(f"command_joints must list the robot's {n} joints once each "
                                 f"(unknown: {', '.join(unknown) or '-'})")
            self._cmd_index = np.array([self.joint_names.index(j) for j in order])
        else:
            self._cmd_index = np.arange(n)
        self.state = self.sim.state()
        self.hold_pose = np.array(self.state.joint_pos, np.float64)
        self.targets = self.hold_pose.copy()
        self.mode = "hold"
        self.sim_time = 0.0
        self.n_steps = int(gp("steps_per_publish").value)
        self.timeout = float(gp("command_timeout_periods").value) / float(gp("command_rate_hz").value)
        self.last_command = -np.inf  # simulated time of the last command
        self.max_catch_up = int(gp("max_catch_up_steps").value)
        self._steps_done = 0
        self._t0 = time.monotonic()
        self.commands = self.rejected = self.timeouts = 0
        self.fall_height = float(gp("fall_height").value)
        self.fell = False
        state_qos, cmd_qos = qos_param(self, "state"), qos_param(self, "command")
        self.js_pub = self.create_publisher(JointState, gp("joint_states_topic").value, state_qos)
        self.imu_pub = None if scene else self.create_publisher(Imu, gp("imu_topic").value, state_qos)
        self.pose_pubs = {name: self.create_publisher(PoseStamped, gp(f"{name}_pose_topic").value, state_qos)
                          for name in (("object", "goal") if scene else ())}
        self.gt_pub = self.create_publisher(PoseStamped, "~/ground_truth", 10)
        bodies, self._touch_cols = touch_sensors(self.sim.model) if not scene else ([], np.zeros(0, np.int64))
        self.contacts = Float64MultiArray()
        self.contacts.layout.dim = [MultiArrayDimension(label=json.dumps(bodies), size=len(bodies),
                                                        stride=len(bodies))]
        self.contacts_pub = self.create_publisher(Float64MultiArray, "~/contacts", state_qos) if bodies else None
        self.diag_pub = self.create_publisher(DiagnosticArray, "/diagnostics", 10)
        self.create_subscription(Float64MultiArray, gp("command_topic").value, self._on_command, cmd_qos)
        self.create_subscription(JointTrajectory, gp("trajectory_topic").value, self._on_trajectory, cmd_qos)
        self.js = JointState()
        self.imu = Imu()
        self.imu.header.frame_id = "imu_link"
        self._gt_every = max(1, int(round(1.0 / (float(gp("ground_truth_rate_hz").value) * self.sim.physics_dt
                                                  * self.n_steps))))
        self._ticks = 0
        self.create_timer(self.sim.physics_dt * self.n_steps, self._step)
        self.create_timer(1.0, self._publish_diagnostics)
        self._publish_state()
        self.get_logger().info(f"{gp('robot').value} on {gp('backend').value}: {n} joints, physics "
                               f"{1.0 / self.sim.physics_dt:g} Hz, command timeout {self.timeout * 1e3:.0f} ms"
                               + (f", params {params}" if params else ""))

    def _randomized(self, task: str, seed: int) -> dict[str, Any]:
        """One draw of the task's physical randomization terms: a robot as different as training allowed."""
        if seed < 0:
            return {}
        from robot_rl.sim import task_config
        from robot_rl.sim.randomization import sample_episode_params

        cfg = task_config(task).randomization
        row = sample_episode_params(cfg, np.random.default_rng(seed), 1, 1).row(0)
        out = {k: row[k] for k in ("friction", "added_mass", "com_offset", "motor_strength", "kp_scale", "kd_scale")}
        out["latency"] = int(row["latency_steps"])
        return out

    @staticmethod
    def _load_params(text: str, file: str) -> dict[str, Any]:
        params: dict[str, Any] = {}
        if file:
            params.update(yaml.safe_load(Path(file).read_text()) or {})
        if text:
            params.update(json.loads(text))
        return params

    # ---- commands --------------------------------------------------------------------------------------------
    def _accept(self, targets: np.ndarray) -> None:
        self.targets[self._cmd_index] = targets
        self.last_command = self.sim_time
        self.commands += 1
        self._activate()

    def _activate(self) -> None:
        if self.mode == "timeout":
            self.sim.set_pd(self.kp, self.kd)
        if self.mode != "active":
            self.get_logger().info(f"commands received: {self.mode} -> active")
            self.mode = "active"

    def _on_command(self, msg: Float64MultiArray) -> None:
        data = np.asarray(msg.data, np.float64)
        if data.shape[0] != self._cmd_index.shape[0] or not np.isfinite(data).all():
            self.rejected += 1  # like forward_command_controller: a wrong-length command is ignored
            return
        self._accept(data)

    def _on_trajectory(self, msg: JointTrajectory) -> None:
        if not msg.points:
            return
        pos = np.asarray(msg.points[-1].positions, np.float64)
        try:
            idx = np.array([self.joint_names.index(j) for j in msg.joint_names])
        except ValueError:
            self.rejected += 1
            return
        if pos.shape[0] != idx.shape[0] or not np.isfinite(pos).all() or len(set(idx.tolist())) != idx.size:
            self.rejected += 1
            return
        self.targets[idx] = pos
        self.last_command = self.sim_time
        self.commands += 1
        self._activate()

    # ---- physics -----------------------------------------------------------------------------------------------
    def _step(self) -> None:
        """Advance physics to wall-clock time (a stalled process catches up by at most `max_catch_up_steps`).

        The command timeout counts simulated time: a stall of this process is not a silent controller.
        """
        due = int((time.monotonic() - self._t0) / self.sim.physics_dt) - self._steps_done
        if due > self.n_steps + self.max_catch_up:  # too far behind: drop the backlog, keep real time from now
            self._steps_done += due - self.n_steps - self.max_catch_up
            due = self.n_steps + self.max_catch_up
        if due <= 0:
            return
        if self.mode == "active" and self.sim_time - self.last_command > self.timeout:
            self.mode = "timeout"
            self.timeouts += 1
            self.sim.set_pd(0.0, self.kd)
            self.get_logger().warning(f"no command for {self.timeout * 1e3:.0f} ms: damping (kp = 0)")
        self.state = self.sim.step(self.targets, due)
        self._steps_done += due
        self.sim_time += due * self.sim.physics_dt
        self._publish_state()

    def _publish_state(self) -> None:
        stamp = self.get_clock().now().to_msg()
        s = self.state
        self.js.header.stamp = stamp
        fill_joint_state(self.js, self.joint_names, s)
        if self.imu_pub is not None:
            self.imu.header.stamp = stamp
            fill_imu(self.imu, s)
            self.imu_pub.publish(self.imu)
        if self.contacts_pub is not None:  # before the joints: a tick never sees joints newer than the contacts
            self.contacts.data = self.sim.sensordata()[self._touch_cols].tolist()
            self.contacts_pub.publish(self.contacts)
        if self.pose_pubs:  # published before the joints: a tick never sees joints newer than the poses
            self._publish_poses(stamp)
        self.js_pub.publish(self.js)
        self._ticks += 1
        if s.base_pos is not None:
            height = float(np.asarray(s.base_pos)[2])
            if height < self.fall_height or float(tilt_angle(np.asarray(s.base_quat))) > 1.0:
                self.fell = True
            if self._ticks % self._gt_every == 0:
                self._publish_ground_truth()

    def _publish_poses(self, stamp: Any) -> None:
        """Object and goal poses in the arm's base frame, as a camera's pose estimate or motion capture would."""
        obj, quat = self.sim.object_pose()
        for name, (pos, q) in (("object", (obj, quat)), ("goal", (self.sim.goal, (1.0, 0.0, 0.0, 0.0)))):
            msg = PoseStamped()
            msg.header.stamp, msg.header.frame_id = stamp, "base"
            msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = (float(v) for v in pos)
            o = msg.pose.orientation
            o.w, o.x, o.y, o.z = (float(v) for v in q)
            self.pose_pubs[name].publish(msg)

    def _publish_ground_truth(self) -> None:
        s = self.state
        msg = PoseStamped()
        sec = int(self.sim_time)
        msg.header.stamp.sec, msg.header.stamp.nanosec = sec, int((self.sim_time - sec) * 1e9)
        msg.header.frame_id = "world"
        pos, q = np.asarray(s.base_pos, np.float64), np.asarray(s.base_quat, np.float64)
        msg.pose.position.x, msg.pose.position.y, msg.pose.position.z = float(pos[0]), float(pos[1]), float(pos[2])
        o = msg.pose.orientation
        o.w, o.x, o.y, o.z = float(q[0]), float(q[1]), float(q[2]), float(q[3])
        self.gt_pub.publish(msg)

    def _publish_diagnostics(self) -> None:
        level = DiagnosticStatus.OK if self.mode != "timeout" and not self.fell else DiagnosticStatus.WARN
        values = {"mode": self.mode, "backend": self.get_parameter("backend").value,
                  "sim_time": f"{self.sim_time:.3f}", "commands": str(self.commands),
                  "rejected_commands": str(self.rejected), "timeouts": str(self.timeouts),
                  "fell": str(self.fell).lower()}
        if self.pose_pubs:  # the arm task's success measure, from the simulator's own state
            values.update(distance=f"{self.sim.distance():.4f}", success=str(self.sim.success()).lower())
        status = DiagnosticStatus(level=level, name=f"{self.get_name()}: simulated robot", message=self.mode,
                                  values=[KeyValue(key=k, value=v) for k, v in values.items()])
        msg = DiagnosticArray(status=[status])
        msg.header.stamp = self.get_clock().now().to_msg()
        self.diag_pub.publish(msg)


def main(args: list[str] | None = None) -> None:
    init(args)
    try:
        node = SimRobotNode()
    except (RobotRLError, ValueError, OSError) as exc:
        print(f"sim_robot: error: {exc}", file=sys.stderr)
        rclpy.try_shutdown()
        raise SystemExit(2) from None
    spin(node)


if __name__ == "__main__":
    main()
