"""ros2 launch entry point for robot_rl on a system ROS 2 installation (colcon package robot_rl_ros).

    ros2 launch robot_rl_ros deploy.launch.py bundle:=/path/to/bundle [sim:=mujoco] [record:=/path/to/bag]
    ros2 launch ros_nodes/launch/deploy.launch.py bundle:=...          # straight from a source checkout

The nodes are the robot_rl Python modules (`python3 -m robot_rl.ros_nodes.<node>`), the same processes that
`robot-rl deploy` starts. With autostart:=false the policy node waits unconfigured for a lifecycle manager
(`ros2 lifecycle set /policy_node configure`, then `activate`).
"""

from __future__ import annotations

from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PythonExpression


def _node(module: str, params: list[tuple[str, object]], condition: IfCondition | None = None) -> ExecuteProcess:
    cmd: list[object] = [LaunchConfiguration("python"), "-m", f"robot_rl.ros_nodes.{module}", "--ros-args"]
    for key, value in params:
        cmd += ["-p", [f"{key}:=", value]]
    return ExecuteProcess(cmd=cmd, output="screen", name=module, condition=condition,
                          sigterm_timeout="5", sigkill_timeout="5")


def generate_launch_description() -> LaunchDescription:
    arg = LaunchConfiguration
    args = [
        DeclareLaunchArgument("bundle", description="policy bundle folder (contract.json + policy.onnx)"),
        DeclareLaunchArgument("sim", default_value="none", description="none | mujoco | pybullet"),
        DeclareLaunchArgument("record", default_value="", description="bag folder ('' = no recording)"),
        DeclareLaunchArgument("autostart", default_value="true", description="configure + activate at start"),
        DeclareLaunchArgument("output_mode", default_value="forward", description="forward | trajectory"),
        DeclareLaunchArgument("joint_states_topic", default_value="/joint_states"),
        DeclareLaunchArgument("imu_topic", default_value="/imu"),
        DeclareLaunchArgument("command_topic", default_value="/forward_position_controller/commands"),
        DeclareLaunchArgument("robot", default_value="a1", description="simulated robot model"),
        DeclareLaunchArgument("python", default_value="python3", description="interpreter with robot_rl installed"),
    ]
    topics = [("joint_states_topic", arg("joint_states_topic")), ("imu_topic", arg("imu_topic")),
              ("command_topic", arg("command_topic"))]
    nodes = [
        _node("recorder", [("output", arg("record"))],
              IfCondition(PythonExpression(["'", arg("record"), "' != ''"]))),
        _node("sim_robot_node", [("robot", arg("robot")), ("backend", arg("sim"))] + topics,
              IfCondition(PythonExpression(["'", arg("sim"), "' != 'none'"]))),
        _node("policy_node", [("bundle", arg("bundle")), ("autostart", arg("autostart")),
                              ("output_mode", arg("output_mode"))] + topics),
    ]
    return LaunchDescription(args + nodes)
