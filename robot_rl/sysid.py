"""System identification (real to sim): fit the simulated robot's physical parameters to a logged dataset.

The logged certified targets are replayed in MuJoCo (robot_rl.sim.make_robot_sim) from logged states over short
horizons; the parameters minimize the next-state prediction error (joint positions, joint velocities, gyro, and
when the log has them the base height and linear velocity from a ground-truth pose topic and the joint torques:
the observables that separate added mass from motor strength), each normalized by a typical error, averaged over
segments with the worst-predicted tenth left out (a fall or a glitch that no parameter explains), by CMA-ES (the `cma`
package) over the continuous parameters for every candidate latency (an integer number of physics steps,
profiled exhaustively with a short search), then longer searches at the best candidates. The
uncertainty is the Gauss-Newton covariance s^2 (J^T J)^-1 of the normalized residuals at the optimum, J by central
differences: it measures how well the log constrains each parameter, not the model error (contacts make the cost
non-smooth), so treat it as a lower bound. A bootstrap over the logged segments (`bootstrap` resamples, the default)
measures how much the fit depends on which parts of the log it saw: the segments are resampled with replacement,
the continuous parameters refitted by a short CMA-ES warm-started at the fit (at the fitted latency), and the latency
re-chosen among the profiled candidates (each with its profile fit) by the cost on the resample; the reported
`std` is then the bootstrap standard deviation (never below the Gauss-Newton one) and `interval` the 5-95%
percentile interval of the refits. Resamples of a fixed log cannot reveal a model error the whole log shares (timing
jitter, unmodelled dynamics): a fit can be confidently wrong. Nor do they show how much the fit depends on which
start states were drawn from a long log: `subsets` > 1 fits disjoint sets of them and reports the mean and the
spread. The result becomes a training config centred on the fitted values (`robot-rl train --config` reads it).

Identifiability: motor strength and the PD gain scale multiply the same torque (strength * kp_scale * error) and
only separate when torques saturate, so by default strength is fitted with the gains at nominal; fit `kp_scale`
instead (`params=("kp_scale", ...)`) when motor strength is known. Ground friction only shows when feet slip:
its uncertainty says how much the log constrains it. A base pose (motion capture / simulator ground truth) makes the
initial states exact; without it the base is put on the ground by kinematics and its velocity is set to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from robot_rl.atomic import write_text
from robot_rl.controllers import DelayLine
from robot_rl.dataset import Dataset, DatasetError
from robot_rl.errors import ConfigError

BOUNDS: dict[str, tuple[float, float]] = {
    "friction": (0.1, 2.0),
    "motor_strength": (0.4, 1.6),
    "kp_scale": (0.4, 1.6),
    "kd_scale": (0.4, 1.6),
    "added_mass": (-3.0, 6.0),
}
"""Search ranges of the continuous parameters (robot_rl.sim.robot_sim.PARAM_KEYS names)."""
NOMINAL: dict[str, float] = {"friction": 1.0, "motor_strength": 1.0, "kp_scale": 1.0, "kd_scale": 1.0,
                             "added_mass": 0.0, "latency": 0}
DEFAULT_PARAMS = ("friction", "motor_strength", "added_mass", "latency")
OBSERVABLES = ("joint_pos", "joint_vel", "gyro", "base_height", "base_pos", "base_vel", "joint_effort",
               "accelerometer")
"""Quantities the prediction error can compare (SysIdConfig.observables)."""


@dataclass(frozen=True)
class SysIdConfig:
    params: tuple[str, ...] = DEFAULT_PARAMS
    """Parameters to fit (BOUNDS keys and `latency`); the others stay nominal."""
    horizon: int = 8
    """Control ticks predicted from each logged start state. A longer horizon separates added mass from motor
    strength better and sharpens the latency profile; the time grows in proportion (docs/replay.md)."""
    max_segments: int = 160
    """Start states used (spread evenly over the dataset). The errors of neighbouring ticks are correlated, so
    more, not longer, segments average them out (docs/replay.md)."""
    max_latency: int = 6
    """Latencies 0..max_latency physics steps are profiled."""
    profile_evals: int = 60
    """CMA-ES evaluations per latency candidate (the profile)."""
    max_evals: int = 400
    """CMA-ES evaluations refining each of the best latency candidates."""
    refine_latencies: int = 2
    """Latency candidates (the best of the profile) refined with `max_evals` each; the best refit wins. A short
    profile search can rank the true latency second."""
    fresh_starts: int = 1
    """Extra searches from the nominal parameters (wide step) for every latency, in the profile and in the
    refinement, beside the one from the best parameters found so far; the best wins. Added mass and motor strength
    trade off along a long, flat valley of the cost, and a search started in the wrong part of it stays there,
    carrying a wrong fit from one latency to the next (docs/replay.md)."""
    seed: int = 0
    """CMA-ES seed."""
    q_scale: float = 0.01
    """Joint-position residual normalization [rad]."""
    qd_scale: float = 0.3
    """Joint-velocity residual normalization [rad/s]."""
    gyro_scale: float = 0.1
    """Gyro residual normalization [rad/s]."""
    observables: tuple[str, ...] = ("joint_pos", "joint_vel", "gyro", "base_height", "base_vel", "joint_effort")
    """Predicted quantities compared with the log (OBSERVABLES); those the dataset lacks are skipped (base height
    and velocity need a ground-truth pose topic, joint effort a robot that reports torques). The base's vertical
    motion and the joint torques are what separates added mass from motor strength: with joint states alone a
    heavier robot with stronger motors moves its joints the same way."""
    base_height_scale: float = 0.005
    """Base-height residual normalization [m]."""
    base_vel_scale: float = 0.05
    """Base linear-velocity residual normalization [m/s] (world frame)."""
    effort_scale: float = 1.0
    """Joint-torque residual normalization [N m]."""
    acc_scale: float = 2.0
    """Accelerometer residual normalization [m/s^2] (`accelerometer` observable, off by default: contact impacts
    make single samples noisy)."""
    trim: float = 0.1
    """Fraction of segments left out of the cost at every evaluation, the worst-predicted ones (least trimmed
    squares): a fall, an impact or a timing glitch in a real log that no parameter explains must not steer the
    fit. 0 uses every segment."""
    bootstrap: int = 8
    """Bootstrap resamples of the segments (0: Gauss-Newton uncertainty only)."""
    bootstrap_evals: int = 60
    """CMA-ES evaluations per bootstrap refit (warm-started at the fit, so few suffice)."""
    subsets: int = 1
    """Fit this many disjoint sets of `max_segments` start states each (interleaved, evenly spread over the log) and
    report their mean, with the spread between the fits (std / sqrt(subsets), when larger than the bootstrap's) as
    the uncertainty; each fit takes the full time. The bootstrap only resamples the start states one fit saw, so it
    misses how much the fit depends on which ones were drawn (docs/replay.md, Uncertainty)."""
    timing: bool = True
    """Replay each tick with its logged timing when the log has it (robot_rl ticks: state stamps and the command's
    send time on one clock): the physics steps between logged states and the steps before the new command arrived.
    The fitted latency is then the robot's own actuation delay; without timing it also absorbs the pipeline delay
    (state age, inference, transport) and the jitter of the tick period."""

    def __post_init__(self) -> None:
        odd = [o for o in self.observables if o not in OBSERVABLES]
        if odd or not self.observables:
            raise ConfigError(f"sysid: unknown observable {odd[0] if odd else '(none)'} "
                              f"(choose from {', '.join(OBSERVABLES)})")
        bad = [p for p in self.params if p not in BOUNDS and p != "latency"]
        if bad:
            raise ConfigError(f"sysid: unknown parameter {bad[0]} (choose from {', '.join([*BOUNDS, 'latency'])})")
        if (self.horizon < 1 or self.max_segments < 1 or self.max_latency < 0 or self.max_evals < 10
                or self.refine_latencies < 1 or self.fresh_starts < 0):
            raise ConfigError("sysid: horizon >= 1, max_segments >= 1, max_latency >= 0, max_evals >= 10, "
                              "refine_latencies >= 1, fresh_starts >= 0")
        if not 0.0 <= self.trim < 0.5:
            raise ConfigError(f"sysid: trim must be in [0, 0.5), got {self.trim}")
        if self.bootstrap < 0 or self.bootstrap == 1 or self.bootstrap_evals < 10:
            raise ConfigError("sysid: bootstrap must be 0 or >= 2 resamples, bootstrap_evals >= 10")
        if self.subsets < 1:
            raise ConfigError("sysid: subsets must be >= 1")


@dataclass
class Segment:
    qpos: np.ndarray
    qvel: np.ndarray
    prev_target: np.ndarray
    targets: np.ndarray
    """(H, n) certified targets held over each tick."""
    next_q: np.ndarray
    next_qd: np.ndarray
    next_gyro: np.ndarray
    next_height: np.ndarray | None = None
    """(H,) logged base height (ground-truth pose), None without one."""
    next_pos: np.ndarray | None = None
    """(H, 3) logged base position (ground-truth pose), world frame."""
    next_vel: np.ndarray | None = None
    """(H, 3) logged base linear velocity, world frame."""
    next_effort: np.ndarray | None = None
    """(H, n) logged joint torques."""
    next_acc: np.ndarray | None = None
    """(H, 3) logged accelerometer."""
    steps: np.ndarray | None = None
    """(H,) physics steps between consecutive logged states (None: the contract's decimation)."""
    onset: np.ndarray | None = None
    """(H,) physics steps after each logged state during which the previous target is still held, because the new
    command had not reached the robot yet (None: 0, the command acts at the tick)."""


@dataclass
class SysIdResult:
    values: dict[str, float]
    std: dict[str, float]
    """Reported uncertainty: the bootstrap std when it ran (at least the Gauss-Newton std), else Gauss-Newton."""
    cost: float
    nominal_cost: float
    latency_profile: dict[int, float] = field(default_factory=dict)
    segments: int = 0
    evaluations: int = 0
    gn_std: dict[str, float] = field(default_factory=dict)
    """Gauss-Newton std at the optimum (latency: half the spread of near-best latencies, at least 0.5)."""
    interval: dict[str, tuple[float, float]] = field(default_factory=dict)
    """5-95% percentile interval of the bootstrap refits (empty without bootstrap)."""
    bootstrap: dict[str, list[float]] = field(default_factory=dict)
    """Every bootstrap refit, per parameter."""
    subset_fits: dict[str, list[float]] = field(default_factory=dict)
    """With `subsets` > 1: each disjoint subset's fit, per parameter (`values` is their mean, the latency their most
    common value)."""

    def as_dict(self) -> dict[str, Any]:
        return {"values": self.values, "std": self.std, "gn_std": self.gn_std,
                "interval": {k: list(v) for k, v in self.interval.items()}, "bootstrap": self.bootstrap,
                "subset_fits": self.subset_fits,
                "cost": self.cost, "nominal_cost": self.nominal_cost,
                "latency_profile": {str(k): v for k, v in self.latency_profile.items()}, "segments": self.segments,
                "evaluations": self.evaluations}


class Predictor:
    """Replays logged targets on a SimRobot from logged states; residuals of the predicted next states."""

    def __init__(self, robot: str, physics_dt: float, decimation: int, segments: list[Segment],
                 cfg: SysIdConfig) -> None:
        from robot_rl.sim import make_robot_sim

        self.sim = make_robot_sim(robot, physics_dt=physics_dt)
        self.decimation = decimation
        self.segments = segments
        self.cfg = cfg
        m = self.sim.model
        self._jq = np.array([m.jnt_qposadr[m.joint(j).id] for j in self.sim.joint_names])
        self._jv = np.array([m.jnt_dofadr[m.joint(j).id] for j in self.sim.joint_names])
        self.evaluations = 0
        self.last_widths: list[int] = []

    def residuals(self, params: dict[str, float]) -> np.ndarray:
        cont = {k: v for k, v in params.items() if k != "latency"}
        self.sim.apply_params({**{k: NOMINAL[k] for k in BOUNDS}, **cont, "latency": 0})
        latency = int(params.get("latency", 0))
        m, d = self.sim.model, self.sim.data
        sl = self.sim._s  # noqa: SLF001 - the SimRobot's own sensor slices
        gyro, acc = sl["imu_gyro"], sl["imu_acc"]
        torque = self.sim._s_torque  # noqa: SLF001
        c = self.cfg
        use = set(c.observables)
        out = []
        for seg in self.segments:
            mujoco.mj_resetData(m, d)
            d.qpos[:] = seg.qpos
            d.qvel[:] = seg.qvel
            delay = DelayLine(len(self._jq), latency)
            delay.push(seg.prev_target)
            held = seg.prev_target
            for h in range(len(seg.targets)):
                steps = self.decimation if seg.steps is None else int(seg.steps[h])
                onset = 0 if seg.onset is None else int(seg.onset[h])
                for i in range(steps):
                    d.ctrl[:] = delay.push(held if i < onset else seg.targets[h])
                    mujoco.mj_step(m, d)
                held = seg.targets[h]
                if not np.all(np.isfinite(d.qpos)):
                    out.append(np.full(self.width(seg), 1e3))
                    continue
                mujoco.mj_forward(m, d)
                parts = []
                if "joint_pos" in use:
                    parts.append((d.qpos[self._jq] - seg.next_q[h]) / c.q_scale)
                if "joint_vel" in use:
                    parts.append((d.qvel[self._jv] - seg.next_qd[h]) / c.qd_scale)
                if "gyro" in use:
                    parts.append((d.sensordata[gyro] - seg.next_gyro[h]) / c.gyro_scale)
                if seg.next_height is not None:
                    parts.append(np.array([(d.qpos[2] - seg.next_height[h]) / c.base_height_scale]))
                if seg.next_pos is not None:
                    parts.append((d.qpos[0:3] - seg.next_pos[h]) / c.base_height_scale)
                if seg.next_vel is not None:
                    parts.append((d.qvel[0:3] - seg.next_vel[h]) / c.base_vel_scale)
                if seg.next_effort is not None:
                    parts.append((d.sensordata[torque] - seg.next_effort[h]) / c.effort_scale)
                if seg.next_acc is not None:
                    parts.append((d.sensordata[acc] - seg.next_acc[h]) / c.acc_scale)
                out.append(np.concatenate(parts))
        self.evaluations += 1
        self.last_widths = [len(seg.targets) * self.width(seg) for seg in self.segments]
        return np.concatenate(out)

    def segment_costs(self, params: dict[str, float]) -> np.ndarray:
        """Mean squared normalized residual of every segment."""
        r = self.residuals(params) ** 2
        ends = np.cumsum(self.last_widths)
        return np.add.reduceat(r, ends - np.asarray(self.last_widths)) / np.asarray(self.last_widths)

    def _inliers(self, per: np.ndarray) -> np.ndarray:
        keep = np.ones(len(per), bool)
        drop = int(math.floor(self.cfg.trim * len(per)))
        if drop:
            keep[np.argsort(per, kind="stable")[len(per) - drop:]] = False
        return keep

    def kept(self, params: dict[str, float]) -> list[int]:
        """Indices of the segments the cost uses at `params` (all but the worst `trim` fraction)."""
        return np.flatnonzero(self._inliers(self.segment_costs(params))).tolist()

    def width(self, seg: Segment) -> int:
        """Residuals per predicted tick of a segment."""
        use, n = set(self.cfg.observables), len(self._jq)
        return (n * ("joint_pos" in use) + n * ("joint_vel" in use) + 3 * ("gyro" in use)
                + (seg.next_height is not None) + 3 * (seg.next_pos is not None) + 3 * (seg.next_vel is not None)
                + n * (seg.next_effort is not None) + 3 * (seg.next_acc is not None))

    def cost(self, params: dict[str, float]) -> float:
        """Mean squared normalized residual over the segments, the worst `trim` fraction left out."""
        if self.cfg.trim <= 0.0:
            r = self.residuals(params)
            return float(r @ r / len(r))
        per = self.segment_costs(params)
        return float(per[self._inliers(per)].mean())


def segments_from_dataset(ds: Dataset, cfg: SysIdConfig, model: mujoco.MjModel, joint_names: list[str],
                          feet: list[str] | None = None, subset: tuple[int, int] = (0, 1)) -> list[Segment]:
    """Start states and logged targets of `max_segments` evenly spread windows of `horizon` ticks; `subset` (k, n):
    the k-th of n interleaved disjoint sets of them (n * max_segments windows spread over the log)."""
    need = ("joint_pos", "joint_vel", "base_quat", "base_ang_vel", "safe_targets")
    h = cfg.horizon
    use = set(cfg.observables)
    dt = float(model.opt.timestep)
    decimation = max(1, int(round(1.0 / (ds.contract.policy_rate_hz * dt))))
    candidates: list[tuple[int, int]] = []
    timings: dict[int, tuple[np.ndarray, np.ndarray] | None] = {}
    for e, ep in enumerate(ds.episodes):
        missing = [k for k in need if k not in ep.infos]
        if missing:
            raise DatasetError(f"dataset {ds.path}: episodes lack {', '.join(missing)} (not a robot_rl replay dataset)")
        timings[e] = _logged_timing(ep.infos, dt, decimation) if cfg.timing else None
        ok = np.ones(len(ep) + 1, bool) if timings[e] is None else timings[e][0] > 0  # type: ignore[index]
        candidates += [(e, k) for k in range(1, len(ep) + 1 - h) if ok[k:k + h].all()]
    if not candidates:
        raise DatasetError(f"dataset {ds.path}: no episode is longer than {h + 1} ticks")
    k, n = subset
    pick = np.linspace(0, len(candidates) - 1, min(n * cfg.max_segments, len(candidates))).round().astype(int)[k::n]
    jq = np.array([model.jnt_qposadr[model.joint(j).id] for j in joint_names])
    jv = np.array([model.jnt_dofadr[model.joint(j).id] for j in joint_names])
    data = mujoco.MjData(model)
    segs = []
    for i in pick:
        e, k = candidates[i]
        inf = ds.episodes[e].infos
        qpos = np.zeros(model.nq)
        qvel = np.zeros(model.nv)
        quat = inf["base_quat"][k]
        qpos[3:7] = quat / np.linalg.norm(quat)
        qpos[jq] = inf["joint_pos"][k]
        qvel[jv] = inf["joint_vel"][k]
        qvel[3:6] = inf["base_ang_vel"][k]
        if "base_pos" in inf and "base_lin_vel" in inf:
            qpos[0:3] = inf["base_pos"][k]
            qvel[0:3] = _rotate(qpos[3:7], inf["base_lin_vel"][k])
        else:
            qpos[2] = _ground_height(model, data, qpos)
        nxt = slice(k + 1, k + 1 + h)
        seg = Segment(qpos=qpos, qvel=qvel, prev_target=inf["safe_targets"][k - 1],
                      targets=inf["safe_targets"][k:k + h], next_q=inf["joint_pos"][nxt],
                      next_qd=inf["joint_vel"][nxt], next_gyro=inf["base_ang_vel"][nxt])
        if "base_pos" in inf and "base_lin_vel" in inf:
            if "base_height" in use:
                seg.next_height = np.asarray(inf["base_pos"][nxt, 2], np.float64)
            if "base_pos" in use:
                seg.next_pos = np.asarray(inf["base_pos"][nxt], np.float64)
            if "base_vel" in use:
                seg.next_vel = np.stack([_rotate(inf["base_quat"][j], inf["base_lin_vel"][j])
                                         for j in range(k + 1, k + 1 + h)])
        if "joint_effort" in use and "joint_effort" in inf and np.any(inf["joint_effort"]):
            seg.next_effort = np.asarray(inf["joint_effort"][nxt], np.float64)
        if "accelerometer" in use and "base_lin_acc" in inf:
            seg.next_acc = np.asarray(inf["base_lin_acc"][nxt], np.float64)
        segs.append(seg)
        timing = timings[e]
        if timing is not None:
            segs[-1].steps, segs[-1].onset = timing[0][k:k + h], timing[1][k:k + h]
    return segs


def _rotate(quat: np.ndarray, vec: np.ndarray) -> np.ndarray:
    """A base-frame vector in the world frame."""
    rot = np.zeros(9)
    q = np.asarray(quat, np.float64)
    mujoco.mju_quat2Mat(rot, q / np.linalg.norm(q))
    return rot.reshape(3, 3) @ np.asarray(vec, np.float64)


def _logged_timing(infos: dict[str, np.ndarray], dt: float, decimation: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(steps, onset) per tick from the logged clocks, or None when the log has no usable timing.

    steps[k]: physics steps between the state of tick k and that of tick k + 1 (from the state stamps; 0 marks a
    tick whose next state is missing, repeated or more than 3 periods away: not used as a segment). onset[k]: physics
    steps after the state of tick k before its command reached the robot, floor((tick stamp + compute time - state
    stamp) / dt), when the tick and state stamps share one clock (robot_rl ticks over ROS 2); else 0."""
    if "state_stamp" not in infos:
        return None
    st = np.asarray(infos["state_stamp"], np.float64)
    if len(st) < 2 or not np.all(np.isfinite(st)):
        return None
    gaps = np.round(np.diff(st) / dt).astype(int)
    steps = np.where((gaps >= 1) & (gaps <= 3 * decimation), gaps, 0)
    steps = np.append(steps, 0)
    onset = np.zeros(len(st), int)
    if "stamp" in infos and "compute_time" in infos:
        sent = np.asarray(infos["stamp"], np.float64) + np.asarray(infos["compute_time"], np.float64)
        lag = sent - st
        if np.all(np.isfinite(lag)) and abs(float(np.median(lag))) < 0.25:  # one clock
            onset = np.clip(np.floor(np.maximum(lag, 0.0) / dt + 1e-6).astype(int), 0, np.maximum(steps, 0))
    if np.all(steps[:-1] == decimation) and not onset.any():
        return None
    return steps, onset


def _ground_height(model: mujoco.MjModel, data: mujoco.MjData, qpos: np.ndarray) -> float:
    """Base height that puts the lowest geom of the robot on the floor (z = 0)."""
    data.qpos[:] = qpos
    data.qpos[2] = 1.0
    mujoco.mj_kinematics(model, data)
    body = model.geom_bodyid > 0
    low = np.min(data.geom_xpos[body, 2] - model.geom_rbound[body] * (model.geom_type[body] == 2))
    return 1.0 - float(low)


def identify(ds: Dataset, robot: str, cfg: SysIdConfig | None = None,
             progress: Any = None) -> SysIdResult:
    """Fit `cfg.params` to the dataset (see the module docstring); with `cfg.subsets` > 1, once per disjoint subset
    of start states, combined by `combine_subset_fits`. `progress(latency, cost, params)` is called as each latency
    is profiled (with `subset=(k, n)` too when there are several)."""
    cfg = cfg or SysIdConfig()
    ds.check_robot(robot)
    fits = [_identify(ds, robot, cfg, (k, cfg.subsets), progress) for k in range(cfg.subsets)]
    return fits[0] if len(fits) == 1 else combine_subset_fits(fits)


def combine_subset_fits(fits: list[SysIdResult]) -> SysIdResult:
    """The mean of fits on disjoint subsets of one log (latency: the most common value, ties to the lower mean
    cost); std per parameter = the larger of the fits' mean std and the spread between them / sqrt(n)."""
    n = len(fits)
    per = {p: [f.values[p] for f in fits] for p in fits[0].values}
    values: dict[str, float] = {}
    std: dict[str, float] = {}
    for p, xs in per.items():
        if p == "latency":
            counts = {int(v): xs.count(v) for v in xs}
            mean_cost = {lat: float(np.mean([f.cost for f in fits if f.values[p] == lat])) for lat in counts}
            values[p] = min(counts, key=lambda lat: (-counts[lat], mean_cost[lat]))
        else:
            values[p] = float(np.mean(xs))
        std[p] = max(float(np.mean([f.std.get(p, 0.0) for f in fits])), float(np.std(xs, ddof=1)) / math.sqrt(n))
    interval = {p: (min([*xs, *[f.interval[p][0] for f in fits if p in f.interval]]),
                    max([*xs, *[f.interval[p][1] for f in fits if p in f.interval]])) for p, xs in per.items()}
    profile = {lat: float(np.mean([f.latency_profile[lat] for f in fits if lat in f.latency_profile]))
               for lat in fits[0].latency_profile}
    return SysIdResult(values=values, std=std, cost=float(np.mean([f.cost for f in fits])),
                       nominal_cost=float(np.mean([f.nominal_cost for f in fits])), latency_profile=profile,
                       segments=sum(f.segments for f in fits), evaluations=sum(f.evaluations for f in fits),
                       gn_std={p: float(np.mean([f.gn_std.get(p, 0.0) for f in fits])) for p in per},
                       interval=interval,
                       bootstrap={p: [v for f in fits for v in f.bootstrap.get(p, [])] for p in fits[0].bootstrap},
                       subset_fits={p: [float(v) for v in xs] for p, xs in per.items()})


def _identify(ds: Dataset, robot: str, cfg: SysIdConfig, subset: tuple[int, int], progress: Any) -> SysIdResult:
    import cma

    contract = ds.contract
    pred = Predictor(robot, 1.0 / contract.physics_rate_hz, contract.decimation, [], cfg)
    pred.segments = segments_from_dataset(ds, cfg, pred.sim.model, pred.sim.joint_names, subset=subset)
    names = [p for p in cfg.params if p != "latency"]
    lo = np.array([BOUNDS[p][0] for p in names])
    hi = np.array([BOUNDS[p][1] for p in names])
    lat_candidates = list(range(cfg.max_latency + 1)) if "latency" in cfg.params else [0]

    def to_params(x: np.ndarray, latency: int) -> dict[str, float]:
        return {**{p: float(v) for p, v in zip(names, lo + np.clip(x, 0, 1) * (hi - lo))}, "latency": latency}

    nominal_cost = pred.cost({})
    x0 = (np.array([NOMINAL[p] for p in names]) - lo) / (hi - lo)

    def search(start: np.ndarray, sigma: float, evals: int, latency: int, restart: int = 0) -> tuple[np.ndarray, float]:
        if not names:
            return np.zeros(0), pred.cost({"latency": latency})
        es = cma.CMAEvolutionStrategy(start, sigma, {"bounds": [0, 1], "seed": cfg.seed + 1 + restart, "verbose": -9,
                                                     "maxfevals": evals, "tolfun": 1e-7, "tolx": 1e-5})
        while not es.stop():
            xs = es.ask()
            es.tell(xs, [pred.cost(to_params(np.asarray(x), latency)) for x in xs])
        return np.asarray(es.result.xbest), float(es.result.fbest)

    def best_of(tries: list[tuple[np.ndarray, float]], evals: int, latency: int) -> tuple[np.ndarray, float]:
        found = [search(start, sigma, evals, latency, restart=k) for k, (start, sigma) in enumerate(tries)]
        return min(found, key=lambda xf: xf[1])

    # profile every latency with short global searches (one started at the best parameters found so far:
    # neighbouring latencies have similar optima; `fresh_starts` from the nominal ones), then search the best
    # `refine_latencies` to convergence the same two ways and keep the best
    fresh = [(x0, 0.3)] * cfg.fresh_starts
    profile: dict[int, float] = {}
    starts: dict[int, np.ndarray] = {}
    incumbent = x0
    for latency in lat_candidates:
        tries = [(incumbent, 0.3)] + (fresh if incumbent is not x0 else [])
        starts[latency], profile[latency] = best_of(tries, cfg.profile_evals, latency)
        if profile[latency] <= min(profile.values()):
            incumbent = starts[latency]
        if progress is not None:
            extra = {"subset": subset} if subset[1] > 1 else {}
            progress(latency, profile[latency], to_params(starts[latency], latency), **extra)
    for cand in sorted(profile, key=profile.__getitem__)[:cfg.refine_latencies]:
        x, f = best_of([(starts[cand], 0.1)] + fresh, cfg.max_evals, cand)
        if f < profile[cand]:
            starts[cand], profile[cand] = x, f
    latency = min(profile, key=profile.__getitem__)
    x, f = starts[latency], profile[latency]
    values = to_params(x, latency)
    segments = pred.segments
    pred.segments = [segments[i] for i in pred.kept(values)]  # the segments the fit explains
    try:
        gn_std = _gauss_newton_std(pred, values, names, hi - lo)
    finally:
        pred.segments = segments
    if "latency" in cfg.params:
        # a discrete parameter: half a step when the profile clearly prefers one value, else the spread of
        # latencies within 10% of the best cost
        near = [k for k, v in profile.items() if v <= 1.1 * f]
        gn_std["latency"] = max(0.5, (max(near) - min(near)) / 2.0)
    else:
        values.pop("latency")
    std = dict(gn_std)
    interval: dict[str, tuple[float, float]] = {}
    boot: dict[str, list[float]] = {}
    if cfg.bootstrap:
        step = np.array([min(0.05, max(3.0 * gn_std[p], 1e-4 * r)) / r for p, r in zip(names, hi - lo)])
        boot = _bootstrap(pred, cfg, names, starts, latency, to_params, step)
        if "latency" not in cfg.params:
            boot.pop("latency", None)
        for k, samples in boot.items():
            arr = np.asarray(samples, np.float64)
            std[k] = max(float(arr.std(ddof=1)), gn_std.get(k, 0.0))
            interval[k] = (float(np.percentile(arr, 5)), float(np.percentile(arr, 95)))
    return SysIdResult(values=values, std=std, cost=f, nominal_cost=nominal_cost, latency_profile=profile,
                       segments=len(pred.segments), evaluations=pred.evaluations, gn_std=gn_std, interval=interval,
                       bootstrap=boot)


def _bootstrap(pred: Predictor, cfg: SysIdConfig, names: list[str], starts: dict[int, np.ndarray], latency: int,
               to_params: Any, step: np.ndarray | None = None) -> dict[str, list[float]]:
    """Refits on `cfg.bootstrap` resamples (with replacement) of the segments: continuous parameters by a short
    CMA-ES warm-started at the fit, its initial step per parameter `step` (normalized units: a few Gauss-Newton
    stds; CMA-ES does not evaluate its start, so a step much wider than the resample's shift finds nothing better
    in a few evaluations and every refit would equal the fit); the latency re-chosen among the profiled candidates
    (each at its profile fit, the best one at the refit) by the resample's cost."""
    import cma

    segments = pred.segments
    rng = np.random.default_rng(cfg.seed + 7919)
    out: dict[str, list[float]] = {p: [] for p in [*names, "latency"]}
    try:
        for _ in range(cfg.bootstrap):
            pred.segments = [segments[i] for i in rng.integers(0, len(segments), len(segments))]
            x = starts[latency]
            if names:
                opts = {"bounds": [0, 1], "seed": int(rng.integers(1, 2**31 - 1)), "verbose": -9,
                        "maxfevals": cfg.bootstrap_evals, "tolfun": 1e-9, "tolx": 1e-7}
                if step is not None:
                    opts["CMA_stds"] = list(step / 0.05)
                es = cma.CMAEvolutionStrategy(x, 0.05, opts)
                while not es.stop():
                    xs = es.ask()
                    es.tell(xs, [pred.cost(to_params(np.asarray(c), latency)) for c in xs])
                if es.result.fbest < pred.cost(to_params(x, latency)):
                    x = np.asarray(es.result.xbest)
            costs = {k: pred.cost(to_params(x if k == latency else s, k)) for k, s in starts.items()}
            best = min(costs, key=costs.__getitem__)
            for p, v in to_params(x if best == latency else starts[best], best).items():
                out[p].append(float(v))
    finally:
        pred.segments = segments
    return out


def _gauss_newton_std(pred: Predictor, values: dict[str, float], names: list[str],
                      ranges: np.ndarray) -> dict[str, float]:
    """sqrt(diag(s^2 (J^T J)^-1)) of the normalized residuals at the optimum, J by central differences."""
    if not names:
        return {}
    r0 = pred.residuals(values)
    cols = []
    for p, rng in zip(names, ranges):
        h = 0.01 * rng
        up = pred.residuals({**values, p: values[p] + h})
        down = pred.residuals({**values, p: values[p] - h})
        cols.append((up - down) / (2 * h))
    jac = np.stack(cols, axis=1)
    dof = max(1, len(r0) - len(names))
    s2 = float(r0 @ r0) / dof
    cov = s2 * np.linalg.pinv(jac.T @ jac)
    return {p: float(math.sqrt(max(cov[i, i], 0.0))) for i, p in enumerate(names)}


def randomization_overrides(values: dict[str, float], std: dict[str, float], spread: float = 0.1) -> list[str]:
    """Task-config overrides whose randomization ranges are centred on the fitted `values` (SysIdResult.values, or
    a sysid JSON's): +-max(2 std, spread * |value|) (added mass: +-max(2 std, 0.5 kg)), clipped to physical
    limits."""
    out = []
    for key, value in values.items():
        s = std.get(key, 0.0)
        if key == "latency":
            steps = max(1, int(math.ceil(2 * s)))
            lat_lo, lat_hi = max(0, int(value) - steps), int(value) + steps
            out += [f"randomization.latency_steps.low={lat_lo}", f"randomization.latency_steps.high={lat_hi}"]
            continue
        half = max(2 * s, 0.5 if key == "added_mass" else spread * abs(value))
        lo_f, hi_f = float(value - half), float(value + half)
        if key != "added_mass":
            lo_f = max(lo_f, 0.05)
        out += [f"randomization.{key}.low={lo_f:.4g}", f"randomization.{key}.high={hi_f:.4g}"]
    return out


def write_train_config(path: str | Path, result: SysIdResult, task: str, dataset: str) -> Path:
    """A `robot-rl train --config` YAML: the default task overrides plus randomization centred on the fit."""
    import yaml

    from robot_rl.runner import TrainConfig

    path = Path(path)
    base = [o for o in TrainConfig().task_overrides if not o.startswith("randomization.")]
    doc = {"task": task, "task_overrides": base + randomization_overrides(result.values, result.std)}
    header = ["# robot-rl sysid: randomization centred on parameters identified from " + dataset]
    for k, v in result.values.items():
        lo_hi = result.interval.get(k)
        band = f" (bootstrap 5-95%: {lo_hi[0]:.4g} .. {lo_hi[1]:.4g})" if lo_hi else ""
        header.append(f"#   {k} = {v:.4g} +- {result.std.get(k, 0.0):.3g}{band}")
    header.append(f"# prediction cost {result.cost:.4g} (nominal parameters {result.nominal_cost:.4g})")
    return write_text(path, "\n".join(header) + "\n" + yaml.safe_dump(doc, sort_keys=False))
