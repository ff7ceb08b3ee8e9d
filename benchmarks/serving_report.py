"""The serving tables of BENCHMARKS.md: fp32 against int8, smaller students, recheck margins."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
from report import UNNAMED_MACHINE, mean_std


def timing_stats(timings: pd.DataFrame, keys: list[str]) -> pd.DataFrame:
    """Median and range over runs of each timing (`serving.time_backend` rows), with the load seen."""
    return timings.groupby(keys, sort=False).agg(
        p50_ms=("p50_ms", "median"), p50_min=("p50_ms", "min"), p50_max=("p50_ms", "max"),
        p95_ms=("p95_ms", "median"), texts_per_s_b32=("texts_per_second", "median"),
        tps_min=("texts_per_second", "min"), tps_max=("texts_per_second", "max"),
        size_mb=("size_mb", "first"), load_min=("load_before", "min"), load_max=("load_after", "max"))


def serving_table(root: Path, name: str = "serving.json") -> str:
    """fp32 against int8 serving (benchmarks/serving.py): agreement per task, then the median and
    range over the runs of every timing, with the load average seen around it."""
    path = root / "benchmarks" / "results" / "serving" / name
    if not path.exists():
        return (f"Not run yet: `python benchmarks/serving.py --model banking-routing=model "
                f"--json benchmarks/results/serving/{name}`.")
    record = json.loads(path.read_text())
    tasks = pd.DataFrame(record["tasks"]).T.infer_objects().rename_axis("task").reset_index()
    if not record["timings"]:
        return tasks.round(3).to_markdown(index=False)
    timings = pd.DataFrame(record["timings"])
    stats = timing_stats(timings, ["texts", "where", "backend"])
    runs = timings["run"].nunique()
    parts = [tasks.round(3).to_markdown(index=False), "",
             f"Timed: `{record.get('timed_model', '?')}`, {runs} runs from {record['started']} "
             f"on {record.get('machine', UNNAMED_MACHINE)}; texts per set: {record['n_texts']}.", "",
             stats.reset_index().round(1).to_markdown(index=False)]
    if record.get("batching"):
        parts += ["", "What batching buys the int8 model, every ~300-word text cut to the same number of word "
                  "pieces (best of 3 passes):", "", pd.DataFrame(record["batching"]).to_markdown(index=False)]
    return "\n".join(parts)


def small_students_table(root: Path) -> str:
    """6-, 4- and 3-layer students per task (benchmarks/small_students.py): accuracy over seeds, int8
    agreement, training time; then the int8 and fp32 timings of the seed-0 banking models."""
    path = root / "benchmarks" / "results" / "small-students" / "small-students.json"
    if not path.exists():
        return "Not run yet: `python benchmarks/small_students.py --seeds 0 1 2`, then `--seeds --time`."
    record = json.loads(path.read_text())
    runs = pd.DataFrame([{**r, **{f"int8_{k}": v for k, v in r["int8"].items()}} for r in record["runs"]])
    for since_07 in ("int8_same_class_recheck", "int8_recheck_margin"):  # recorded since 2026-12-07
        runs[since_07] = runs.get(since_07, float("nan"))
    stats = runs.groupby(["task", "window", "backbone"], sort=False).agg(
        seeds=("seed", "nunique"), teacher_acc=("teacher_acc", "mean"), base_acc=("base_acc", mean_std),
        kept_acc=("kept_acc", mean_std), int8_same_class=("int8_same_class", "min"),
        served_same_class=("int8_same_class_recheck", "min"), largest_margin=("int8_recheck_margin", "max"),
        int8_acc_diff_points=("int8_acc_diff_points", "mean"), train_s=("train_s", "mean"))
    parts = [f"Teacher `{runs['teacher'].iloc[0]}`, {runs['max_unlabelled'].iloc[0]} unlabelled rows; "
             "`int8_same_class` (int8 alone) and `served_same_class` (int8 with PyTorch rechecking its near ties, "
             "what `deploy.load_model` serves) are the lowest over seeds (the latter recorded since 2026-12-07, "
             "at the fixed margin 0.15 until each model got its own: `largest_margin`, the largest over seeds, "
             "is empty for those runs).", "",
             stats.reset_index().round(3).to_markdown(index=False)]
    if record.get("timings"):
        frame = pd.DataFrame(record["timings"])
        for task, rows in frame.groupby("task", sort=False):
            timings = timing_stats(rows, ["window", "backbone", "backend", "where", "texts"])
            started = record["timed_tasks"][task]
            parts += ["", f"The seed-0 {task} students, timed from {started}, {rows['run'].nunique()} "
                      "runs (median, min-max):", "", timings.reset_index().round(1).to_markdown(index=False)]
    return "\n".join(parts)


def recheck_margin_table(root: Path) -> str:
    """Each kept student's int8 copy served three ways on its test set (benchmarks/recheck_margin.py):
    alone, rechecked at the fixed margin, rechecked at the margin its export measured."""
    path = root / "benchmarks" / "results" / "serving" / "recheck-margin.json"
    if not path.exists():
        return "Not run yet: `python benchmarks/recheck_margin.py --runs <small_students.py --keep JSON>`."
    record = json.loads(path.read_text())
    rows = pd.DataFrame([{"task": r["task"], "backbone": r["backbone"], "seed": r["seed"], "window": r["window"],
                          "largest_shift": r["calibration"]["largest_gap_shift"], "margin": r["recheck_margin"],
                          "int8_alone": r["same_class"], "fixed_same": r["same_class_fixed"],
                          "fixed_rechecked": r["share_rechecked_fixed"], "own_same": r["same_class_recheck"],
                          "own_rechecked": r["share_rechecked"],
                          "own_acc_diff_points": 100 * (r["acc_recheck"] - r["acc_pytorch"])} for r in record["runs"]])
    return "\n".join([f"Measured from {record['started']} on {record['machine']}. Margin: {record['headroom']} times "
                      f"the largest gap shift on the task's first {record['runs'][0]['calibration']['texts']} "
                      f"unlabelled texts, at least {record['fixed_margin']} (the fixed margin, `fixed_*`); "
                      "`*_same`: share of test texts given PyTorch's class; `*_rechecked`: share PyTorch answered.",
                      "", rows.round(3).to_markdown(index=False)])
