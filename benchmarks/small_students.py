"""Smaller students: 6-, 4- and 3-layer MiniLM side by side on every example task (issue #21).

    python benchmarks/small_students.py --seeds 0 1 2            # train, score, int8 agreement
    python benchmarks/small_students.py --time --runs 3          # then time the seed-0 models, idle

Each (task, seed) distils one student per backbone through `helpers.pipeline.run` with the same
teacher and one teacher cache, so the backbones see identical teacher labels and only the
student differs. The delivered model is exported to int8 ONNX and both backends answer the whole
test set (same class, accuracy: `serving.agreement`). Seed-0 models are kept under ``--models``;
``--time`` measures the banking ones as users reach them (`serving.time_backend`: in process and over HTTP,
short banking texts and ~300-word texts), one backbone after the other on an otherwise idle machine.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import serving  # noqa: E402

from helpers.pipeline import run  # noqa: E402
from helpers.student import StudentConfig  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "small-students" / "small-students.json"
BACKBONES = ("minilm", "minilm-l4", "minilm-l3")
TASKS = ("banking-routing", "ecommerce", "mental-health", "injury")


def one_run(task: str, backbone: str, seed: int, teacher: str, max_unlabelled: int, models: Path,
            keep: bool = False) -> dict:
    """Distil, export int8, compare backends; the seed-0 model folder is kept for timing (every one
    with ``keep``, for studies of the served copies such as benchmarks/recheck_margin.py)."""
    out = models / f"{task}-{backbone}-seed{seed}" / "model"
    shutil.rmtree(out.parent, ignore_errors=True)
    report = run(ROOT / f"data-{task}", teacher, out, StudentConfig(backbone=backbone, seed=seed),
                 max_unlabelled, cache_dir=models / "teacher-cache", progress=False,
                 budget_minutes=None)  # a record must not depend on how busy the machine was
    kept = report.evaluations[2] if report.result.chosen == "student-tuned" else report.evaluations[1]
    serving.export(out, task)
    record = {"task": task, "backbone": backbone, "seed": seed, "teacher": teacher,
              "max_unlabelled": max_unlabelled, "window": report.result.student.config.max_length,
              "teacher_acc": report.evaluations[0].accuracy,
              "base_acc": report.evaluations[1].accuracy, "kept": report.result.chosen,
              "kept_acc": kept.accuracy, "train_s": round(report.result.student.train_seconds, 1),
              "total_s": round(report.seconds, 1), "int8": serving.agreement(out, ROOT / f"data-{task}" / "test.csv"),
              "model_dir": str(out)}
    if seed != 0 and not keep:
        shutil.rmtree(out.parent)
    return record


def time_models(record: dict, task: str, runs: int, requests: int) -> None:
    """int8 and fp32 timings of the kept seed-0 models of ``task`` (one per backbone), replacing that
    task's rows of ``record["timings"]``: a long-text task's students read a longer window than banking's,
    so their ~300-word timings differ, and both are worth keeping."""
    sets = {"short (banking)": serving.texts_of(ROOT / "data-banking-routing" / "test.csv"),
            "~300 words": serving.long_texts()}
    timings = [t for t in record.get("timings", []) if t["task"] != task]
    record.setdefault("timed_tasks", {})[task] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    rows = [r for r in record["runs"] if r["seed"] == 0 and r["task"] == task and Path(r["model_dir"]).exists()]
    for run_index in range(runs):
        for row in rows:
            for backend in serving.BACKENDS:
                for timing in serving.time_backend(Path(row["model_dir"]), backend, sets, requests):
                    timings.append({"run": run_index, "task": task, "backbone": row["backbone"],
                                    "window": row["window"], **timing})
                    print(timings[-1], flush=True)
    record["timings"] = timings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--tasks", nargs="+", default=list(TASKS))
    parser.add_argument("--backbones", nargs="+", default=list(BACKBONES))
    parser.add_argument("--teacher", default="seed",
                        help="the same for every backbone; the default teacher gives the LLM weight 0 anyway")
    parser.add_argument("--max-unlabelled", type=int, default=200, help="the notebook's default")
    parser.add_argument("--models", type=Path, default=ROOT / ".cache" / "small-students")
    parser.add_argument("--keep", action="store_true", help="keep every model folder, not only seed 0's")
    parser.add_argument("--time", action="store_true", help="time the kept seed-0 models of --time-task")
    parser.add_argument("--time-task", default="banking-routing", choices=TASKS)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--json", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    record = json.loads(args.json.read_text()) if args.json.exists() else {"runs": []}
    for seed in args.seeds:
        for task in args.tasks:
            for backbone in args.backbones:
                row = one_run(task, backbone, seed, args.teacher, args.max_unlabelled, args.models, args.keep)
                record["runs"] = [r for r in record["runs"]
                                  if (r["task"], r["backbone"], r["seed"]) != (task, backbone, seed)] + [row]
                print({k: v for k, v in row.items() if k != "model_dir"}, flush=True)
                args.json.parent.mkdir(parents=True, exist_ok=True)
                args.json.write_text(json.dumps(record, indent=1) + "\n")
    if args.time:
        time_models(record, args.time_task, args.runs, args.requests)
        args.json.write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
