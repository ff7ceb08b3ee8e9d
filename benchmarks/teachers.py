"""Teacher benchmark: accuracy and speed of each teacher on each example task, and the
prefix KV-cache and batching speed-ups of the local LLM scorer.

    python benchmarks/teachers.py                     # writes benchmarks/results/teachers.json
    python benchmarks/teachers.py --teachers "local:smollm2-135m?retrieve=4"   # adds to it
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TASKS = ["data-banking-routing", "data-ecommerce", "data-mental-health", "data-injury"]
TEACHERS = ["seed", "local:smollm2-135m", "local:smollm2-135m+seed"]


def speedup(teacher, texts: list[str], setting: str, values: tuple, names: tuple[str, str]) -> dict:
    """Seconds per text under two values of one teacher setting, and their ratio (first / second)."""
    timings, before = {}, getattr(teacher, setting)
    for value, name in zip(values, names):
        setattr(teacher, setting, value)
        start = time.perf_counter()
        teacher.predict(texts)
        timings[name] = (time.perf_counter() - start) / len(texts)
    setattr(teacher, setting, before)
    return {**{k: round(v, 3) for k, v in timings.items()},
            "speedup": round(timings[names[1]] / timings[names[0]], 2)}


def main() -> None:
    from helpers.evaluate import evaluate_teacher
    from helpers.task import load_task
    from helpers.teachers import make_teacher

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--teachers", nargs="+", default=TEACHERS)
    args = parser.parse_args()
    records = []
    for task_dir in args.tasks:
        task = load_task(ROOT / task_dir)
        for spec in args.teachers:
            start = time.perf_counter()
            teacher = make_teacher(spec, task)
            setup = time.perf_counter() - start
            report = evaluate_teacher(task, teacher, progress=False)
            record = {"task": task.name, "teacher": spec, "accuracy": round(report.teacher.accuracy, 4),
                      "macro_f1": round(report.teacher.macro_f1, 4),
                      "texts_per_s": round(1 / report.teacher.seconds_per_text, 2),
                      "setup_seconds": round(setup, 1), "seed_only_accuracy": round(report.baseline.accuracy, 4),
                      "committee_weights": getattr(teacher, "weights", None)}
            if spec.startswith("local:") and "+" not in spec:
                texts = task.test["text"].tolist()[:16]
                record["prefix_cache"] = speedup(teacher, texts, "use_prefix_cache", (True, False),
                                                 ("with_cache", "without_cache"))
                record["batching"] = speedup(teacher, texts, "batch_size", (4, 1), ("batch4", "batch1"))
            if record["committee_weights"] is not None:
                record["committee_weights"] = [round(float(w), 2) for w in record["committee_weights"]]
            print(json.dumps(record), flush=True)
            records.append(record)
    save(records, ROOT / "benchmarks" / "results" / "teachers.json")


def save(records: list[dict], path: Path) -> None:
    """Merge into teachers.json: a re-measured (task, teacher) pair replaces its old record."""
    fresh = {(r["task"], r["teacher"]) for r in records}
    old = json.loads(path.read_text()) if path.exists() else []
    path.write_text(json.dumps([r for r in old if (r["task"], r["teacher"]) not in fresh] + records, indent=2))


if __name__ == "__main__":
    main()
