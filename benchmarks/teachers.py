"""Teacher benchmark: accuracy and speed of each teacher on each example task, and the
prefix KV-cache and batching speed-ups of the local LLM scorer.

    python benchmarks/teachers.py                     # writes benchmarks/results/teachers.json
    python benchmarks/teachers.py --teachers "local:smollm2-135m?retrieve=4"   # adds to it
    python benchmarks/teachers.py --dtypes --tasks data-banking-routing data-injury
        # the local LLM in float32 against bf16 on this CPU: writes benchmarks/results/teachers/dtypes.json
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


def dtype_speed(task, spec: str, dtype, texts: list[str], repeats: int = 3) -> dict:
    """Load and prompt time, then seconds per text over `repeats` passes, with the local LLM in `dtype`."""
    import numpy as np

    from helpers import device
    from helpers.teachers import make_teacher

    chosen, device.teacher_dtype = device.teacher_dtype, lambda _: dtype
    try:
        start = time.perf_counter()
        teacher = make_teacher(spec, task, device="cpu")
        setup = time.perf_counter() - start
        passes = []
        for _ in range(repeats):
            start = time.perf_counter()
            probs = np.array([p for p, _ in teacher.predict(texts)])
            passes.append((time.perf_counter() - start) / len(texts))
    finally:
        device.teacher_dtype = chosen
    return {"task": task.name, "teacher": spec, "dtype": str(dtype).removeprefix("torch."),
            "setup_seconds": round(setup, 1), "seconds_per_text": [round(s, 3) for s in passes],
            "answers": probs.argmax(axis=1).tolist()}


def bf16_instructions() -> list[str]:
    """The CPU's native bf16 instruction sets, as Linux lists them: whether bf16 can win by compute."""
    path = Path("/proc/cpuinfo")
    flags = set(path.read_text().split()) if path.exists() else set()
    return sorted(flags & {"avx512_bf16", "amx_bf16"})


def compare_dtypes(tasks: list[str], texts_per_task: int) -> None:
    """float32 against bf16, side by side on each task's first test texts, and how often they agree."""
    import torch

    from helpers.benchmark import machine
    from helpers.device import teacher_dtype
    from helpers.task import load_task

    records = []
    for task_dir in tasks:
        task = load_task(ROOT / task_dir)
        texts = task.test["text"].tolist()[:texts_per_task]
        pair = [dtype_speed(task, "local:smollm2-135m", dtype, texts) for dtype in (torch.float32, torch.bfloat16)]
        same = sum(a == b for a, b in zip(pair[0]["answers"], pair[1]["answers"])) / len(texts)
        for record in pair:
            record["agreement"] = round(same, 3)
            print(json.dumps(record), flush=True)
        records += pair
    result = {"machine": machine(), "bf16_instructions": bf16_instructions(),
              "default": str(teacher_dtype("cpu")).removeprefix("torch."), "records": records}
    path = ROOT / "benchmarks" / "results" / "teachers" / "dtypes.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))


def main() -> None:
    from helpers.evaluate import evaluate_teacher
    from helpers.task import load_task
    from helpers.teachers import make_teacher

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--tasks", nargs="+", default=TASKS)
    parser.add_argument("--teachers", nargs="+", default=TEACHERS)
    parser.add_argument("--dtypes", action="store_true", help="time the local LLM in float32 and bf16")
    parser.add_argument("--texts", type=int, default=16, help="test texts per task for --dtypes")
    args = parser.parse_args()
    if args.dtypes:
        return compare_dtypes(args.tasks, args.texts)
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
                      # timed afresh (payoff.teacher_speed): the labelling pass reads remembered embeddings
                      "texts_per_s": round(report.teacher.speed["texts_per_second"], 2),
                      "p50_ms": round(report.teacher.speed["p50_ms"], 1),
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
