"""The ``python -m helpers`` command line: one subcommand per pipeline stage."""

from __future__ import annotations

import argparse
import sys

from helpers.task import format_report, inspect_task


def cmd_validate(args: argparse.Namespace) -> int:
    """Print the validation report of each task; non-zero exit on any error."""
    failed = False
    for directory in args.directories:
        task, problems = inspect_task(directory)
        print(format_report(directory, problems, task))
        failed |= task is None or any(p.severity == "error" for p in problems)
    return 1 if failed else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check task folders and print a report")
    validate.add_argument("directories", nargs="+", help="task folder(s), e.g. data-banking-routing")
    validate.set_defaults(func=cmd_validate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
