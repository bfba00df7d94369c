"""Joint PD controller and actuator model, plain numpy: the law the simulator applies at physics rate and the robot
runs on its own computer, so a gain or a delay cannot differ between the two.

The law (legged_gym's position-control actuator, with the motor-strength scale applied to the whole PD output and
the torque limit applied after it, because the limit is a property of the drive and not of the gains):

    tau = clip(s * (kp * (q_des - q) - kd * qd), -tau_max, tau_max)

`q_des` is the target commanded `latency` physics steps earlier (a delay line), which models communication and
computation delay; the MuJoCo backend compiles the same law into actuator gain/bias/forcerange
(`actuator_coefficients`) and feeds it the same delayed sequence (`DelayLine`/`delayed_indices`).
kp = 0 gives the damping mode used as an e-stop backup: tau = -s * kd * qd.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


def pd_torque(q: np.ndarray, qd: np.ndarray, q_des: np.ndarray, kp: np.ndarray | float, kd: np.ndarray | float,
              strength: np.ndarray | float, torque_limit: np.ndarray | float,
              out: np.ndarray | None = None) -> np.ndarray:
    """The actuator law above, batched over leading dims; `out` avoids an allocation in hot loops."""
    tau = np.subtract(q_des, q, out=out)
    tau *= kp
    tau -= np.multiply(kd, qd)
    tau *= strength
    return np.clip(tau, -np.asarray(torque_limit), torque_limit, out=tau)


def actuator_coefficients(kp: np.ndarray, kd: np.ndarray, strength: np.ndarray,
                          torque_limit: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The same law as affine actuator coefficients: force = gain * q_des + bias0 + bias1 * q + bias2 * qd.

    Returns (gain (..., n), bias (..., n, 3), forcerange (..., n, 2)); a simulator copies them into its actuator
    model (MuJoCo `general` actuators: gainprm[0], biasprm[0:3], forcerange), so it integrates exactly `pd_torque`
    without a Python call per physics step.
    """
    kp, kd, s = np.broadcast_arrays(np.asarray(kp, float), np.asarray(kd, float), np.asarray(strength, float))
    gain = s * kp
    bias = np.stack([np.zeros_like(gain), -s * kp, -s * kd], axis=-1)
    lim = np.broadcast_to(np.asarray(torque_limit, float), gain.shape)
    forcerange = np.stack([-lim, lim], axis=-1)
    return gain, bias, forcerange


def delayed_indices(latency: np.ndarray, decimation: int) -> np.ndarray:
    """For targets held for `decimation` physics steps, which past policy target each physics sub-step sees.

    Returns (N, decimation) ints k: sub-step j of the current policy step applies the target issued k policy steps
    ago (k = 0 is the newest). A latency of d physics steps means sub-step j sees the target of policy step
    floor((j - d) / decimation) relative to now.
    """
    lat = np.asarray(latency, int).reshape(-1, 1)
    j = np.arange(decimation).reshape(1, -1)
    return -np.floor_divide(j - lat, decimation)


class TargetHistory:
    """Batched policy-rate history of joint targets (newest first), expanded every policy step into the
    per-physics-step control sequence that realises each environment's action latency (`delayed_indices`)."""

    def __init__(self, num_envs: int, num_joints: int, decimation: int, max_latency: int) -> None:
        self.decimation = decimation
        self.length = max_latency // decimation + 2
        self.hist = np.zeros((num_envs, self.length, num_joints))
        """(N, length, n) targets issued 0, 1, ... policy steps ago; write rows directly to reset them."""
        self._flat = np.zeros((num_envs, decimation), np.int64)

    def set_latency(self, idx: np.ndarray, latency: np.ndarray) -> None:
        """Latency in physics steps for environments `idx`."""
        self._flat[idx] = idx[:, None] * self.length + delayed_indices(latency, self.decimation)

    def push(self, targets: np.ndarray, out: np.ndarray) -> None:
        """Record this policy step's targets (N, n) and write the delayed controls into `out` (N, decimation, n)."""
        n = self.hist.shape[-1]
        self.hist[:, 1:] = self.hist[:, :-1]
        self.hist[:, 0] = targets
        np.take(self.hist.reshape(-1, n), self._flat.reshape(-1), axis=0, out=out.reshape(-1, n))


class DelayLine:
    """Per-physics-step FIFO of joint targets: `push(target)` returns the target from `delay` steps ago.

    Until `delay` targets have been pushed it returns the first one (the robot holds its first command), so a
    freshly reset robot never sees zeros.
    """

    def __init__(self, num_joints: int, delay: int = 0, batch_shape: tuple[int, ...] = ()) -> None:
        if delay < 0:
            raise ValueError("delay must be >= 0 physics steps")
        self.delay = int(delay)
        self._buf = np.zeros((self.delay + 1, *batch_shape, num_joints))
        self._head = 0
        self._primed = False

    def reset(self) -> None:
        self._primed = False

    def push(self, target: np.ndarray) -> np.ndarray:
        if not self._primed:
            self._buf[...] = target
            self._primed = True
        self._head = (self._head + 1) % len(self._buf)
        self._buf[self._head] = target
        return self._buf[(self._head - self.delay) % len(self._buf)]


@dataclass
class ActuatorParams:
    """Per-joint actuator parameters; arrays broadcast against the joint axis."""

    kp: np.ndarray
    """Proportional gain [N m / rad]; 0 selects damping mode."""
    kd: np.ndarray
    """Derivative gain [N m s / rad]."""
    torque_limit: np.ndarray
    """Symmetric drive torque limit [N m], applied after the strength scale."""
    strength: np.ndarray | float = 1.0
    """Motor strength scale (1 = nominal); randomized in training to cover motor variation."""
    latency: int = 0
    """Delay between a target being commanded and being applied, in physics steps."""


class JointPD:
    """Stateful joint PD + actuator model for one robot at physics rate (the robot-side twin of the simulator)."""

    def __init__(self, params: ActuatorParams) -> None:
        self.params = params
        n = int(np.size(params.torque_limit))
        self._delay = DelayLine(n, params.latency)
        self._tau = np.zeros(n)

    @property
    def num_joints(self) -> int:
        return int(self._tau.shape[0])

    def set_gains(self, kp: np.ndarray | float, kd: np.ndarray | float) -> None:
        """Change gains (kp = 0: damping mode, the safe backup when the policy stops)."""
        self.params.kp = np.broadcast_to(np.asarray(kp, float), self._tau.shape).copy()
        self.params.kd = np.broadcast_to(np.asarray(kd, float), self._tau.shape).copy()

    def reset(self) -> None:
        self._delay.reset()

    def torque(self, q: np.ndarray, qd: np.ndarray, q_des: np.ndarray) -> np.ndarray:
        """Torque for this physics step; `q_des` is the newest target, the delay line supplies the applied one."""
        p = self.params
        applied = self._delay.push(np.asarray(q_des, float))
        return pd_torque(q, qd, applied, p.kp, p.kd, p.strength, p.torque_limit, out=self._tau).copy()
