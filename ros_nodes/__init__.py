"""rclpy nodes: policy node, simulated robot, recorder. Thin adapters over robot_rl; nothing else imports rclpy."""
