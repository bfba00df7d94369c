"""Benchmarks behind `robot-rl bench NAME`: each module exposes `add_arguments(parser)` and `run(args) -> dict`.

Each prints its figures as one JSON object on its last line, with a reference measured in the same run (a ratio),
because absolute times on a shared machine drift. Record results in docs/benchmarks.md with the exact command.
"""
