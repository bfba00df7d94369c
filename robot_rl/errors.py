"""Errors a user can cause. The CLI turns each into one line on stderr and a non-zero exit."""


class RobotRLError(Exception):
    """Base class for user-facing errors: the message alone must say what is wrong and where."""


class ConfigError(RobotRLError):
    """A config file or override names an unknown key, has a wrong type or an invalid value."""


class ContractError(RobotRLError):
    """A policy contract is invalid, or does not match the robot / data it is used with."""


class BundleError(RobotRLError):
    """A policy bundle is missing, unreadable or inconsistent."""


class AssetError(RobotRLError):
    """A robot model (URDF/MJCF) or mesh cannot be found or loaded."""
