"""`robot-rl bench NAME [options]`: dispatch to robot_rl.bench.NAME and print its result as the last JSON line."""

from __future__ import annotations

import argparse
import importlib
import json
import pkgutil
import sys

import robot_rl.bench
from robot_rl.errors import ConfigError


def available() -> list[str]:
    return sorted(m.name for m in pkgutil.iter_modules(robot_rl.bench.__path__))


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("name", help="benchmark: " + ", ".join(available()))
    parser.add_argument("rest", nargs=argparse.REMAINDER, help="benchmark options (see robot-rl bench NAME -h)")


def run(args: argparse.Namespace) -> int:
    if args.name not in available():
        raise ConfigError(f"unknown benchmark '{args.name}' (choose from {', '.join(available())})")
    module = importlib.import_module(f"robot_rl.bench.{args.name}")
    parser = argparse.ArgumentParser(prog=f"robot-rl bench {args.name}", description=module.__doc__)
    module.add_arguments(parser)
    result = module.run(parser.parse_args(args.rest))
    sys.stdout.flush()
    print(json.dumps(result, sort_keys=True))
    return 0
