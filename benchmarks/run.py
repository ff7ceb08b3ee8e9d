"""Run the benchmark suite and render BENCHMARKS.md.

    python benchmarks/run.py --suite tasks --seeds 0 1 2          # our four example tasks + spam
    python benchmarks/run.py --suite banking77 --banking77 ../shared/benchmarks/banking77
    python benchmarks/run.py --render                              # only rebuild BENCHMARKS.md

Each run writes benchmarks/results/<task>-<teacher>-seed<S>.json (the output of
`python -m helpers benchmark`); the report is built from whatever results exist.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
TASKS = ["data-banking-routing", "data-ecommerce", "data-mental-health", "data-injury",
         "benchmarks/tasks/data-spam"]


def slug(text: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-." else "_" for ch in text)


def run_one(task_dir: Path, teacher: str, seed: int, guard_folds: int = 1, recipe: str = "v3",
            search_trials: int = 0) -> Path:
    """One `python -m helpers benchmark` call in a subprocess (fresh memory, honest timing)."""
    guard = f"-guard{guard_folds}" if guard_folds > 1 else ""
    tag = ("" if recipe == "v3" else f"-{recipe}") + (f"-search{search_trials}" if search_trials else "")
    out = RESULTS / f"{slug(task_dir.name.removeprefix('data-'))}-{slug(teacher)}{guard}{tag}-seed{seed}.json"
    cmd = [sys.executable, "-m", "helpers", "benchmark", "--task", str(task_dir), "--teacher", teacher,
           "--seed", str(seed), "--guard-folds", str(guard_folds), "--recipe", recipe,
           "--search-trials", str(search_trials), "--json", str(out)]
    print("+", " ".join(cmd), flush=True)
    subprocess.run(cmd, check=True, cwd=ROOT, stdout=subprocess.DEVNULL)
    return out


def variants(recipes: list[str], searches: list[int]) -> list[tuple[str, int]]:
    """Every (recipe, search trials) pair a task and seed runs, side by side in one call."""
    return [(recipe, trials) for recipe in recipes for trials in searches]


def run_banking77(source: Path, shots: list[int], teacher: str, seeds: list[int], max_unlabelled: int,
                  recipes: list[str], searches: list[int]) -> None:
    from helpers.benchmark import build_banking77_task

    with tempfile.TemporaryDirectory() as tmp:
        for k in shots:
            task = build_banking77_task(source, k, Path(tmp) / f"data-banking77-{k}shot", max_unlabelled)
            for seed in seeds:
                for recipe, trials in variants(recipes, searches):
                    run_one(task, teacher, seed, recipe=recipe, search_trials=trials)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--suite", choices=["tasks", "banking77"], action="append", default=[])
    parser.add_argument("--teacher", default="local:smollm2-135m+seed")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--banking77", type=Path, default=None,
                        help="BANKING77 folder (default: shared/benchmarks/banking77 beside or inside the checkout)")
    parser.add_argument("--shots", type=int, nargs="+", default=[5, 10])
    parser.add_argument("--banking77-teacher", default="seed",
                        help="SmolLM2 scoring 77 class names per text is ~10x slower than on 8 and the "
                             "committee gives it weight 0 even on 8 banking classes, so the seed classifier")
    parser.add_argument("--max-unlabelled", type=int, default=1500)
    parser.add_argument("--guard-folds", type=int, default=1, help="folds the never-worse guard pools")
    parser.add_argument("--recipes", nargs="+", default=["v3"],
                        help="training recipes (helpers/recipes.py), run side by side for each task and seed")
    parser.add_argument("--search-trials", type=int, nargs="+", default=[0],
                        help="recipe-search trials (0: none), run side by side, e.g. 0 8")
    parser.add_argument("--render", action="store_true", help="only rebuild BENCHMARKS.md")
    args = parser.parse_args()
    RESULTS.mkdir(parents=True, exist_ok=True)
    if "tasks" in args.suite:
        for task in args.tasks:
            for seed in args.seeds:
                for recipe, trials in variants(args.recipes, args.search_trials):
                    run_one(ROOT / task, args.teacher, seed, args.guard_folds, recipe, trials)
    if "banking77" in args.suite:
        from helpers.benchmark import find_banking77

        source = args.banking77 or find_banking77(ROOT)
        if source is None:
            parser.error("BANKING77 not found: pass --banking77 DIR")
        run_banking77(source, args.shots, args.banking77_teacher, args.seeds, args.max_unlabelled, args.recipes,
                      args.search_trials)
    from report import render

    from helpers.benchmark import machine

    records = [json.loads(p.read_text()) for p in sorted(RESULTS.glob("*.json")) if p.name != "teachers.json"]
    (ROOT / "BENCHMARKS.md").write_text(render(records, machine()))
    print("wrote BENCHMARKS.md")


if __name__ == "__main__":
    main()
