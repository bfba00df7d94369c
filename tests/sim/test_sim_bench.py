"""`robot-rl bench sim` returns its figures (values are not asserted: tests never time the machine)."""

from __future__ import annotations

import argparse

from robot_rl.bench import sim as bench_sim


def test_bench_sim_reports_required_keys() -> None:
    parser = argparse.ArgumentParser()
    bench_sim.add_arguments(parser)
    result = bench_sim.run(parser.parse_args(["--threads", "2", "--num-envs", "4", "--seconds", "0.25"]))
    for key in ("env_steps_per_s", "raw_physics_steps_per_s", "decimation", "overhead_ratio", "threads",
                "thread_speedup"):
        assert key in result
    assert result["decimation"] == 4 and result["threads"] == 2
    assert result["env_steps_per_s"] > 0 and result["raw_physics_steps_per_s"] > 0 and result["overhead_ratio"] > 0
    assert result["scheduler"] == "other" and result["cpu_latency_us"] == -1  # no knob asked for: none applied
