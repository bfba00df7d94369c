"""Control-loop statistics of the policy node: tick period, missed periods, compute time, state latency and ticks
per status, kept in fixed-size buffers (no allocation per tick) and reported as diagnostic key/values."""

from __future__ import annotations

from typing import Any

import numpy as np

from robot_rl.tick_record import STATUS_NAMES


class Ring:
    """Fixed-size float ring buffer (the most recent `size` samples)."""

    def __init__(self, size: int = 2048) -> None:
        self.data = np.zeros(size)
        self.n = 0

    def add(self, x: float) -> None:
        self.data[self.n % self.data.shape[0]] = x
        self.n += 1

    def values(self) -> np.ndarray:
        return self.data[:min(self.n, self.data.shape[0])]

    def clear(self) -> None:
        self.n = 0


class LoopStats:
    def __init__(self, period: float, count_missed: bool) -> None:
        self.period = period
        self.count_missed = count_missed
        """Timer-driven loops miss a period when a tick comes more than 1.5 periods after the previous one."""
        self.periods, self.compute, self.latency = Ring(), Ring(), Ring()
        self.reset()

    def reset(self) -> None:
        self.periods.clear()
        self.compute.clear()
        self.latency.clear()
        self.ticks = self.missed = 0
        self.by_status = [0] * len(STATUS_NAMES)
        self._last = 0.0

    def tick(self, t0: float, compute: float, status: int) -> None:
        if self._last > 0:
            dt = t0 - self._last
            self.periods.add(dt)
            if self.count_missed and dt > 1.5 * self.period:
                self.missed += int(round(dt / self.period)) - 1
        self._last = t0
        self.compute.add(compute)
        self.ticks += 1
        self.by_status[status] += 1

    def key_values(self, info: dict[str, Any]) -> list[tuple[str, str]]:
        """Diagnostic key/values in ms, plus the scalar (and small array) entries of the last safety telemetry.

        Runs on the control thread between ticks, so it stays well under a 500 Hz period: one percentile call per
        ring, plain string formatting."""
        periods, compute, latency = self.periods.values(), self.compute.values(), self.latency.values()

        def pct(a: np.ndarray, qs: list[float]) -> list[str]:
            return [f"{x * 1e3:.3f}" for x in np.percentile(a, qs)] if a.size else ["nan"] * len(qs)

        p50, p99, pmax = pct(periods, [50, 99, 100])
        c50, c99, cmax = pct(compute, [50, 99, 100])
        l50, l99 = pct(latency, [50, 99])
        values = [("ticks", str(self.ticks)), ("missed_periods", str(self.missed)),
                  ("rate_hz", f"{periods.size / periods.sum():.2f}" if periods.size else "nan"),
                  ("period_p50_ms", p50), ("period_p99_ms", p99), ("period_max_ms", pmax),
                  ("compute_p50_ms", c50), ("compute_p99_ms", c99), ("compute_max_ms", cmax),
                  ("state_latency_p50_ms", l50), ("state_latency_p99_ms", l99)]
        values += [(f"ticks_{name}", str(n)) for name, n in zip(STATUS_NAMES, self.by_status)]
        for key, value in info.items():
            if isinstance(value, (bool, int, float, str, np.floating, np.integer, np.bool_)):
                values.append((f"safety.{key}", str(value)))
            elif isinstance(value, np.ndarray) and value.size <= 32:
                values.append((f"safety.{key}", "[" + ",".join(f"{x:.4g}" for x in value.ravel().tolist()) + "]"))
        return values
