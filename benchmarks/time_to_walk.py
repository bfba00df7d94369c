"""Time-to-walk curve of a `robot-rl train` run (wall-clock on the x-axis), from its TensorBoard log and eval.json.

    nice robot-rl train                                     # make train defaults
    python benchmarks/time_to_walk.py runs/a1_walk-<stamp> --plot docs/img/time_to_walk.png

Training episodes report the mean velocity-tracking error (|v_xy - command|, m/s) and whether the robot fell; the
run's final evaluation (eval.json) is the deterministic policy at the 0.5 m/s forward command. The last line printed
is one JSON object: the first wall-clock minute at which training episodes track below --threshold without falls,
and the final evaluation figures.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any


def scalars(run: Path, tags: list[str]) -> dict[str, list[tuple[int, float]]]:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"), size_guidance={"scalars": 0})
    acc.Reload()
    have = set(acc.Tags()["scalars"])
    return {t: [(e.step, e.value) for e in acc.Scalars(t)] for t in tags if t in have}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="run folder written by robot-rl train")
    parser.add_argument("--threshold", type=float, default=0.15, help="tracking error that counts as walking [m/s]")
    parser.add_argument("--plot", type=Path, help="write the curve PNG here")
    args = parser.parse_args()
    tags = ["perf/wall_minutes", "episode/tracking_error", "episode/fell", "episode/return_recent100"]
    data = scalars(args.run, tags)
    minutes = dict(data["perf/wall_minutes"])
    err = [(minutes[s], v) for s, v in data.get("episode/tracking_error", []) if s in minutes]
    fell = dict(data.get("episode/fell", []))
    ret = [(minutes[s], v) for s, v in data.get("episode/return_recent100", []) if s in minutes]
    first = None
    window: list[tuple[float, float, float]] = []
    for step, value in data.get("episode/tracking_error", []):
        if step not in minutes:
            continue
        window = [*window[-9:], (minutes[step], value, fell.get(step, 1.0))]
        if (first is None and len(window) == 10 and max(w[1] for w in window) < args.threshold
                and max(w[2] for w in window) == 0.0):
            first = window[-1][0]
    eval_file = args.run / "eval.json"
    final: dict[str, Any] = json.loads(eval_file.read_text()) if eval_file.is_file() else {}
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, axes = plt.subplots(1, 2, figsize=(10, 3.6))
        import numpy as np

        values = np.array([v for _, v in err])
        smooth = np.convolve(values, np.ones(50) / 50, mode="valid") if len(values) >= 50 else values
        axes[0].plot([m for m, _ in err], values, lw=0.5, alpha=0.3)
        axes[0].plot([m for m, _ in err][len(values) - len(smooth):], smooth, lw=1.5, label="mean of 50 iterations")
        axes[0].legend()
        axes[0].axhline(args.threshold, color="k", ls="--", lw=0.8)
        axes[0].set_ylabel("training-episode tracking error [m/s]")
        axes[1].plot([m for m, _ in ret], [v for _, v in ret])
        axes[1].set_ylabel("mean episode return (last 100)")
        for ax in axes:
            ax.set_xlabel("wall-clock [min]")
            ax.grid(alpha=0.3)
        fig.suptitle(f"A1 time to walk: {args.run.name}")
        fig.tight_layout()
        args.plot.parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=100)
    print(json.dumps({"run": str(args.run), "first_walking_minute_training": first,
                      "train_minutes": max(minutes.values()) if minutes else None,
                      "eval_tracking_error": final.get("tracking_error_mean"), "eval_fell": final.get("fell_mean"),
                      "eval_return": final.get("return_mean"), "eval_episodes": final.get("episodes")}))


if __name__ == "__main__":
    main()
