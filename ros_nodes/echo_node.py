"""Echo node: the benchmark's reference. Republishes each JointState's positions as a Float64MultiArray at once.

Same topics, message types, QoS and executor as the policy node, so `policy / echo` round-trip isolates the cost
of the policy tick (conversion, observation, network, safety chain) from DDS and rclpy.
"""

from __future__ import annotations

from typing import Any

from rclpy.node import Node
from sensor_msgs.msg import JointState
from std_msgs.msg import Float64MultiArray

from .qos import declare_qos, qos_param
from .runtime import declare_realtime, init, spin


class EchoNode(Node):
    def __init__(self, node_name: str = "echo_node", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        self.declare_parameter("joint_states_topic", "/joint_states")
        self.declare_parameter("command_topic", "/forward_position_controller/commands")
        declare_qos(self, "state")
        declare_qos(self, "command")
        self._msg = Float64MultiArray(check_fields=False)
        self._pub = self.create_publisher(Float64MultiArray, self.get_parameter("command_topic").value,
                                          qos_param(self, "command"))
        self.create_subscription(JointState, self.get_parameter("joint_states_topic").value, self._on_state,
                                 qos_param(self, "state"))

    def _on_state(self, msg: JointState) -> None:
        self._msg.data = msg.position
        self._pub.publish(self._msg)


def main(args: list[str] | None = None) -> None:
    init(args)
    node = EchoNode()
    node.declare_parameter("executor", "single")
    _pm_qos = declare_realtime(node)  # held until exit
    spin(node, node.get_parameter("executor").value)


if __name__ == "__main__":
    main()
