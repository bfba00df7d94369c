"""`robot-rl` command line: one console script, one module per subcommand (imported only when used).

Every error a user can cause ends as one line on stderr and exit code 2; nothing prints a bare traceback.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from robot_rl.errors import RobotRLError

# subcommand -> module exposing `add_arguments(parser)` and `run(args) -> int`
COMMANDS: dict[str, tuple[str, str]] = {
    "train": ("robot_rl.commands.train", "train a policy in simulation"),
    "eval": ("robot_rl.commands.evaluate", "evaluate a run, checkpoint or bundle (any backend)"),
    "export": ("robot_rl.commands.export", "export a checkpoint as a policy bundle"),
    "bench": ("robot_rl.commands.bench", "run a benchmark (sim, safety, ros, ...)"),
    "deploy": ("robot_rl.commands.deploy", "run a bundle on a robot through ROS 2"),
    "replay": ("robot_rl.commands.replay", "convert rosbag2 logs into an offline-RL dataset"),
    "finetune": ("robot_rl.commands.finetune", "fine-tune a bundle from logged data and/or online"),
    "sysid": ("robot_rl.commands.sysid", "identify physical parameters from logged data"),
}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = argparse.ArgumentParser(prog="robot-rl", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (_, help_text) in COMMANDS.items():
        sub.add_parser(name, help=help_text, add_help=False)
    if not argv or argv[0] in ("-h", "--help") or argv[0] not in COMMANDS:
        if argv and argv[0] not in ("-h", "--help"):
            print(f"robot-rl: error: unknown command '{argv[0]}' (choose from {', '.join(COMMANDS)})",
                  file=sys.stderr)
            return 2
        parser.print_help()
        return 0
    name = argv[0]
    module = importlib.import_module(COMMANDS[name][0])
    cmd_parser = argparse.ArgumentParser(prog=f"robot-rl {name}", description=COMMANDS[name][1])
    module.add_arguments(cmd_parser)
    args = cmd_parser.parse_args(argv[1:])
    try:
        return int(module.run(args) or 0)
    except RobotRLError as exc:
        print(f"robot-rl {name}: error: {exc}", file=sys.stderr)
        return 2
    except (PermissionError, FileNotFoundError, IsADirectoryError, NotADirectoryError, FileExistsError) as exc:
        # a file the user named (a bundle's contract, a dataset, an output folder) that cannot be used as asked
        print(f"robot-rl {name}: error: {exc.filename or ''}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"robot-rl {name}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - last line of defence: one line, details only on request
        if os.environ.get("ROBOT_RL_DEBUG"):
            raise
        print(f"robot-rl {name}: internal error: {type(exc).__name__}: {exc} "
              "(set ROBOT_RL_DEBUG=1 for the traceback)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
