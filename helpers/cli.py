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


def cmd_distill(args: argparse.Namespace) -> int:
    """Run the full pipeline on one task and print the report."""
    from dataclasses import replace
    from pathlib import Path

    from helpers.device import is_main_process, resolve_device
    from helpers.pipeline import run
    from helpers.student import StudentConfig

    config = StudentConfig.recipe(args.recipe, backbone=args.backbone, seed=args.seed,
                                  device=resolve_device(args.device), epochs=args.epochs, max_steps=args.max_steps,
                                  max_length=args.max_length)
    if args.test_mode:  # a CI smoke run (as rasbt's --test_mode): every stage, 10 steps per student, not a model
        config = replace(config, epochs=1).with_floor(10)
    work_dir = args.work_dir or Path(".cache/runs") / Path(args.task).resolve().name
    report = run(args.task, args.teacher, args.out, config, args.max_unlabelled, args.cache,
                 teacher_budget=args.teacher_budget, synthetic_per_class=args.synthetic_per_class,
                 work_dir=work_dir, resume=args.resume, guard_folds=args.guard_folds,
                 search_trials=args.search_trials, budget_minutes=args.budget_minutes)
    if is_main_process():  # under torchrun every process has the same report; one copy is enough
        print(report.text())
    return 0


def cmd_benchmark(args: argparse.Namespace) -> int:
    """Run one benchmark and write its JSON record."""
    import json
    from pathlib import Path

    from helpers.benchmark import machine, run_benchmark
    from helpers.recipes import parse_settings

    settings = parse_settings(args.set)
    for name in ("max_steps", "max_length"):
        if getattr(args, name) is not None:
            settings.setdefault(name, getattr(args, name))
    record = run_benchmark(args.task, args.teacher, args.backbone, args.seed, args.max_unlabelled, args.epochs,
                           args.guard_folds, args.recipe, settings, args.search_trials)
    record["machine"] = machine()
    Path(args.json).parent.mkdir(parents=True, exist_ok=True)
    Path(args.json).write_text(json.dumps(record, indent=2))
    print(json.dumps(record, indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m helpers", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    validate = commands.add_parser("validate", help="check task folders and print a report")
    validate.add_argument("directories", nargs="+", help="task folder(s), e.g. data-banking-routing")
    validate.set_defaults(func=cmd_validate)
    add_distill(commands)
    add_benchmark(commands)
    return parser


def add_distill(commands) -> None:
    from helpers.budget import BUDGET_MINUTES
    from helpers.device import DEVICES
    from helpers.teachers import DEFAULT_TEACHER

    distill = commands.add_parser("distill", help="teacher -> student on one task, export model/")
    distill.add_argument("--task", required=True, help="task folder")
    distill.add_argument("--teacher", default=DEFAULT_TEACHER, help=f"teacher spec (default {DEFAULT_TEACHER})")
    distill.add_argument("--backbone", default="minilm", help="minilm, minilm-l4, minilm-l3 or an HF name/path")
    distill.add_argument("--out", default="model", help="output folder (replaced atomically)")
    distill.add_argument("--max-unlabelled", type=positive_int, default=None,
                         help="label at most N unlabelled rows (default: all)")
    distill.add_argument("--epochs", type=positive_int, default=None, help="training epochs (default: the recipe's)")
    add_recipe(distill)
    distill.add_argument("--teacher-budget", type=positive_int, default=None,
                         help="ask the teacher about at most N rows, those the seed-only student is least sure of")
    distill.add_argument("--synthetic-per-class", type=int, default=0,
                         help="new texts per class written by a teacher that can write (0: off)")
    distill.add_argument("--seed", type=int, default=0, help="random seed (same seed, same metrics)")
    distill.add_argument("--cache", default=".cache/teacher", help="teacher answer cache folder")
    distill.add_argument("--work-dir", default=None,
                         help="training checkpoints folder (default .cache/runs/<task folder name>)")
    add_guard_folds(distill)
    distill.add_argument("--budget-minutes", type=non_negative_float, default=BUDGET_MINUTES, metavar="M",
                         help=f"time budget for the run (default {BUDGET_MINUTES:g}): the two students always "
                              "train; a guard tie-break fold or the refit that would overrun it is skipped, "
                              "and the report says so (0: no limit)")
    add_search_trials(distill)
    distill.add_argument("--resume", action="store_true",
                         help="continue a killed run from its last checkpoint in --work-dir")
    distill.add_argument("--device", default="auto", type=str.lower, choices=DEVICES,
                         help="where the student and a local teacher run (default auto: cuda, then mps, else cpu)")
    distill.add_argument("--test-mode", action="store_true", help="tiny training, for smoke tests (not a real model)")
    distill.set_defaults(func=cmd_distill)


def add_benchmark(commands) -> None:
    from helpers.teachers import DEFAULT_TEACHER

    bench = commands.add_parser("benchmark", help="full pipeline on one task, all numbers to a JSON file")
    bench.add_argument("--task", required=True, help="task folder")
    bench.add_argument("--teacher", default=DEFAULT_TEACHER, help="teacher spec")
    bench.add_argument("--backbone", default="minilm", help="student backbone")
    bench.add_argument("--seed", type=int, default=0, help="random seed")
    bench.add_argument("--max-unlabelled", type=positive_int, default=None, help="cap on unlabelled rows")
    bench.add_argument("--epochs", type=positive_int, default=None, help="training epochs")
    add_recipe(bench)
    bench.add_argument("--set", nargs="*", default=[], metavar="NAME=VALUE",
                       help="override recipe fields, e.g. --set learning_rate=1e-4 min_steps=150")
    add_guard_folds(bench)
    add_search_trials(bench)
    bench.add_argument("--json", required=True, help="where to write the JSON record")
    bench.set_defaults(func=cmd_benchmark)


def add_recipe(parser: argparse.ArgumentParser) -> None:
    from helpers.recipes import DEFAULT_RECIPE, RECIPES

    parser.add_argument("--recipe", choices=sorted(RECIPES), default=DEFAULT_RECIPE,
                        help=f"training recipe, see helpers/recipes.py (default {DEFAULT_RECIPE})")
    parser.add_argument("--max-steps", type=non_negative_int, default=None,
                        help="cut the epochs to those that fit in N updates, for big corpora (0: no cap; "
                             "default: the recipe's, 320)")
    parser.add_argument("--max-length", type=positive_int, default=None, metavar="N",
                        help="the student's window in word pieces (default: chosen from the task's texts, "
                             "128 to 256)")


def add_guard_folds(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--guard-folds", type=positive_int, default=1,
                        help="seed-row folds the never-worse guard pools (default 1; 3 is steadier, 3x training; "
                             "a tie adds folds up to 3 by itself)")


def add_search_trials(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--search-trials", type=non_negative_int, default=0, metavar="N",
                        help="Optuna trials over student-tuned's learning rate, epochs and temperature, scored on "
                             "held-out seed rows (never test); each is one more training (default 0: off)")


def positive_int(value: str, least: int = 1, kind: type = int) -> int:
    """argparse type with a readable error for 0, negatives and words (`kind` float: any number)."""
    try:
        number = kind(value)
    except ValueError:
        noun = "a whole number" if kind is int else "a number"
        raise argparse.ArgumentTypeError(f"expected {noun}, got {value!r}") from None
    if not number >= least:  # also rejects nan
        raise argparse.ArgumentTypeError(f"expected a number >= {least}, got {value}")
    return number


def non_negative_int(value: str) -> int:
    """argparse type for a count where 0 means off (the same readable errors as `positive_int`)."""
    return positive_int(value, least=0)


def non_negative_float(value: str) -> float:
    """argparse type for minutes and the like, where 0 means off (the errors of `positive_int`)."""
    return positive_int(value, least=0, kind=float)


def main(argv: list[str] | None = None) -> int:
    """Run a subcommand; user mistakes print a readable message, not a traceback."""
    from helpers.problems import TaskError
    from helpers.teachers.http import TeacherUnavailable

    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except (TaskError, FileNotFoundError, ValueError, TeacherUnavailable) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
