"""cmd_vel publisher: a constant geometry_msgs/Twist at a fixed rate (teleop stand-in for deploy runs and tests)."""

from __future__ import annotations

from typing import Any

from geometry_msgs.msg import Twist
from rclpy.node import Node

from .qos import declare_qos, qos_param
from .runtime import init, spin


class CmdVelPublisher(Node):
    def __init__(self, node_name: str = "cmd_vel_publisher", **kwargs: Any) -> None:
        super().__init__(node_name, **kwargs)
        for name in ("vx", "vy", "wz"):
            self.declare_parameter(name, 0.0)
        self.declare_parameter("topic", "/cmd_vel")
        self.declare_parameter("rate_hz", 10.0)
        declare_qos(self, "cmd_vel")
        self.msg = Twist()
        self.msg.linear.x = float(self.get_parameter("vx").value)
        self.msg.linear.y = float(self.get_parameter("vy").value)
        self.msg.angular.z = float(self.get_parameter("wz").value)
        self.pub = self.create_publisher(Twist, self.get_parameter("topic").value, qos_param(self, "cmd_vel"))
        self.create_timer(1.0 / float(self.get_parameter("rate_hz").value), lambda: self.pub.publish(self.msg))


def main(args: list[str] | None = None) -> None:
    init(args)
    spin(CmdVelPublisher())


if __name__ == "__main__":
    main()
