"""Benchmark harness: BANKING77 task building, a tiny end-to-end smoke run, the report."""

from __future__ import annotations

import json
import os
import re
import sys
from pathlib import Path

import pytest
from conftest import make_task, require

from helpers.benchmark import build_banking77_task, find_banking77, run_benchmark, tfidf_baseline
from helpers.task import load_task

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [("I want my money back", "refund"), ("please refund the order", "refund"),
         ("refund me for the broken kettle", "refund"), ("parcel has not arrived", "delivery"),
         ("where is my package", "delivery"), ("courier lost my box", "delivery")]


def test_banking77_k_shot_task_is_built_outside_the_repo(tmp_path):
    source = find_banking77(ROOT)
    require(source is not None, "BANKING77 (shared/benchmarks/banking77 beside or inside the checkout)",
            "CI lays ../shared beside the clone; copy it there to run the benchmarks")
    folder = build_banking77_task(source, k=2, out_dir=tmp_path / "data-b77", max_unlabelled=100)
    task = load_task(folder)
    assert len(task.classes) == 77
    assert task.train["label"].value_counts().eq(2).all()
    assert len(task.test) == 3080 and len(task.unstructured) == 100
    assert not set(task.train["text"]) & set(task.unstructured["text"])


def test_tfidf_baseline_scores_the_test_set(tmp_path):
    task = load_task(make_task(tmp_path / "data-shop", train=TRAIN))
    evaluation = tfidf_baseline(task)
    assert evaluation.name == "tfidf_logreg" and 0 <= evaluation.accuracy <= 1
    assert evaluation.per_class["support"].sum() == len(task.test)


@pytest.mark.slow
def test_benchmark_smoke_run_writes_every_field(tmp_path):
    record = run_benchmark(make_task(tmp_path / "data-shop", train=TRAIN), "seed", max_unlabelled=3, epochs=1,
                           settings={"min_steps": 2, "min_examples_per_class": 0})  # fields, not accuracy
    assert record["task"] == "shop" and record["n_test"] == 2
    assert set(record["teacher"]) >= {"spec", "accuracy", "macro_f1", "texts_per_s"}
    assert set(record["student_tuned"]) >= {"accuracy", "macro_f1", "train_seconds", "p50_ms_batch1",
                                            "texts_per_s_batch32", "size_mb"}
    assert record["student_tuned"]["size_mb"] > 10  # MiniLM weights, not an empty file
    assert "tfidf_logreg" in record["baselines"] and record["total_seconds"] > 0
    # no time budget: a record must not depend on how busy the machine was
    assert "guard" in record["data"] and "budget" not in record["data"]
    assert record["window"] == {"max_length": 128, "group_by_length": False}  # short texts: chosen 128
    json.dumps(record)  # serialisable as the CLI writes it


def test_benchmark_runs_the_recipe_search_when_asked(tmp_path):
    """`--search-trials` reaches the pipeline: the record says how many trials ran and what they chose
    (a few steps per training: the wiring is tested here, the search itself in test_search)."""
    from helpers.cli import main

    task = make_task(tmp_path / "data-shop", train=TRAIN)
    out = tmp_path / "record.json"
    assert main(["benchmark", "--task", str(task), "--teacher", "seed", "--max-unlabelled", "3", "--epochs", "1",
                 "--set", "min_steps=2", "min_examples_per_class=0", "--search-trials", "2", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["search_trials"] == 2 and record["settings"] == {"min_steps": 2, "min_examples_per_class": 0}
    search = record["data"]["search"]
    assert len(search["trials"]) == 2 and search["chosen"]["trial"] in (0, 1)
    assert record["machine"].startswith(f"{os.cpu_count()} CPU cores (")  # rendered elsewhere, it still says where


def test_report_renders_mean_and_spread(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import flatten, render

    def record(seed: int, acc: float) -> dict:
        scores = {"accuracy": acc, "macro_f1": acc}
        return {"task": "shop", "n_test": 2, "seed": seed, "total_seconds": 1.0,
                "teacher": {"spec": "seed", "texts_per_s": 5.0, **scores}, "student_base": scores,
                "student_tuned": {**scores, "kept": "student-tuned", "train_seconds": 1.0, "p50_ms_batch1": 2.0,
                                  "texts_per_s_batch32": 100.0, "size_mb": 90.0},
                "baselines": {"tfidf_logreg": scores}}
    rebuilt = {**record(2, 0.5), "data": {"teacher_seed_rows": 8}}  # the teacher never saw validation
    refit = {**record(3, 0.7), "data": {"teacher_seed_rows": 8, "refit": True}}
    uncapped = {**refit, "seed": 0, "student_base": {"accuracy": 0.6, "macro_f1": 0.6}, "settings": {"max_steps": 0}}
    long = {**refit, "seed": 1, "student_base": {"accuracy": 0.4, "macro_f1": 0.4},
            "window": {"max_length": 256, "group_by_length": True}}
    searched = {**refit, "seed": 4, "student_base": {"accuracy": 0.3, "macro_f1": 0.3}, "search_trials": 8}
    named = {**record(1, 0.9), "machine": "test cpu"}
    text = render([record(0, 0.8), named, rebuilt, refit, uncapped, long, searched], "test machine", root=tmp_path)
    assert "0.85 ± 0.071" in text and "Rendered on: test machine." in text
    assert "test cpu (1 records)" in text and "(AMD EPYC), Python 3.11.7, no GPU (6 records)" in text
    assert re.search(r"\|\s*v1\s*\|.*0\.85 ± 0\.071", text)  # recipes are summarised apart
    assert re.search(r"\|\s*v2\s*\|.*0\.5 ± 0\.0", text) and re.search(r"\|\s*v3\s*\|.*0\.7 ± 0\.0", text)
    assert re.search(r"\|\s*v3 max_steps=0\s*\|.*0\.6 ± 0\.0", text)  # overridden fields label the run
    assert re.search(r"\|\s*v3 window=256\s*\|.*0\.4 ± 0\.0", text)  # so does a window chosen past 128
    assert flatten(long)["recipe_at_any_window"] == "v3"  # but not where each task's window is already picked
    assert re.search(r"\|\s*v3 search=8\s*\|.*0\.3 ± 0\.0", text)  # and a recipe search
    assert (tmp_path / "benchmarks" / "accuracy.png").stat().st_size > 1000


def test_long_text_runs_render_latency_for_texts_in_and_past_the_window(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import long_text_table

    assert "Not run yet" in long_text_table(tmp_path)
    path = tmp_path / "benchmarks" / "results" / "long-texts" / "long-texts.json"
    path.parent.mkdir(parents=True)
    old = {"task": "shop", "seed": 0, "strategy": "head-128", "accuracy": 0.8, "train_seconds": 10, "p50_ms_batch1": 5}
    new = {**old, "seed": 1, "accuracy": 0.9, "p50_ms_short": 3.0, "p95_ms_short": 4.0, "p50_ms_long": 9.0,
           "p95_ms_long": 12.0}
    embedder = [{"task": "shop", "strategy": s, "seed_classifier_accuracy": a}
                for s, a in (("embedder head-256", 0.625), ("embedder chunks-256", 0.604))]
    path.write_text(json.dumps({"runs": [old, new], "lengths": [{"task": "shop", "median": 90}],
                                "embedder": embedder}))
    table = long_text_table(tmp_path)
    assert re.search(r"\|\s*shop\s*\|\s*0\.604\s*\|\s*0\.625\s*\|", table)  # one row per task, a column each
    assert "p95 ms, longer text" in table and "30 mixed texts (older runs)" in table
    cells = r"\|\s*shop\s*\|\s*head-128\s*\|\s*2\s*\|\s*0\.85 ± 0\.071\s*\|" + r"\s*{}\s*\|" * 6
    assert re.search(cells.format(10, 3, 4, 9, 12, 5), table)


def test_teacher_records_merge_and_a_remeasured_pair_replaces_its_old_record(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from teachers import save

    path = tmp_path / "teachers.json"
    save([{"task": "shop", "teacher": "seed", "accuracy": 0.5},
          {"task": "shop", "teacher": "local:x", "accuracy": 0.2}], path)
    save([{"task": "shop", "teacher": "local:x", "accuracy": 0.3},
          {"task": "shop", "teacher": "local:x?retrieve=4", "accuracy": 0.4}], path)
    records = {(r["task"], r["teacher"]): r["accuracy"] for r in json.loads(path.read_text())}
    assert records == {("shop", "seed"): 0.5, ("shop", "local:x"): 0.3, ("shop", "local:x?retrieve=4"): 0.4}


def test_http_concurrency_results_render_as_a_table(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from report import http_concurrency_table

    assert "Not run yet" in http_concurrency_table(tmp_path)
    path = tmp_path / "benchmarks" / "results" / "http" / "http-concurrency.json"
    path.parent.mkdir(parents=True)
    runs = [{"concurrency": c, "seconds": round(8 / t, 2), "texts_per_s": t} for c, t in ((1, 0.5), (4, 0.75))]
    path.write_text(json.dumps({"started": "now", "task": "data-x", "n_texts": 8, "cpu_count": 2,
                                "server": "a server", "runs": runs}))
    table = http_concurrency_table(tmp_path)
    assert "a server; 8 texts of `data-x`" in table and re.search(r"\|\s*4\s*\|\s*10.67\s*\|\s*0.75\s*\|", table)


def test_small_student_records_render_by_window_and_each_task_timing_apart(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serving_report import small_students_table

    path = tmp_path / "benchmarks" / "results" / "small-students" / "small-students.json"
    path.parent.mkdir(parents=True)
    int8 = {"n_test": 96, "same_class": 0.98, "acc_pytorch": 0.8, "acc_int8": 0.79, "acc_diff_points": -1.0}
    run = {"task": "shop", "backbone": "minilm-l3", "seed": 0, "teacher": "seed", "max_unlabelled": 200,
           "window": 128, "teacher_acc": 0.7, "base_acc": 0.8, "kept_acc": 0.8, "train_s": 10, "int8": int8}
    runs = [run, {**run, "window": 256, "int8": {**int8, "same_class_recheck": 1.0, "recheck_margin": 0.713}},
            {**run, "window": 256, "seed": 1, "int8": {**int8, "same_class_recheck": 1.0, "recheck_margin": 0.2}}]
    timing = {"run": 0, "task": "bank", "window": 128, "backbone": "minilm-l3", "backend": "onnx",
              "where": "in process", "texts": "long", "p50_ms": 11.0, "p95_ms": 16.0, "texts_per_second": 100.0,
              "size_mb": 17.6, "load_before": 1, "load_after": 1}
    timings = [timing, {**timing, "task": "shop", "window": 256, "p50_ms": 7.0}]
    path.write_text(json.dumps({"runs": runs, "timings": timings, "timed_tasks": {"bank": "then", "shop": "now"}}))
    table = small_students_table(tmp_path)
    assert re.search(r"\|\s*shop\s*\|\s*128\s*\|\s*minilm-l3\s*\|\s*1\s*\|.*\|\s*0\.98\s*\|\s*nan\s*\|", table)
    assert re.search(r"\|\s*shop\s*\|\s*256\s*\|\s*minilm-l3\s*\|\s*2\s*\|.*\|\s*0\.98\s*\|\s*1\s*\|\s*0\.713\s*\|",
                     table)
    assert "bank students, timed from then" in table and "shop students, timed from now" in table
    bank, shop = table.split("shop students")[0], table.split("shop students")[1]
    assert re.search(r"\|\s*128\s*\|\s*minilm-l3\s*\|\s*onnx\s*\|.*\|\s*11\s*\|", bank)
    assert re.search(r"\|\s*256\s*\|\s*minilm-l3\s*\|\s*onnx\s*\|.*\|\s*7\s*\|", shop) and "| 11 " not in shop


def test_recheck_margin_table_puts_each_models_margin_beside_the_fixed_one(tmp_path):
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serving_report import recheck_margin_table

    assert "Not run yet" in recheck_margin_table(tmp_path)
    path = tmp_path / "benchmarks" / "results" / "serving" / "recheck-margin.json"
    path.parent.mkdir(parents=True)
    run = {"task": "forum", "backbone": "minilm", "seed": 1, "window": 256, "teacher": "seed", "kept_acc": 0.68,
           "calibration": {"texts": 300, "largest_gap_shift": 0.46}, "recheck_margin": 0.575, "same_class": 0.958,
           "same_class_fixed": 0.969, "share_rechecked_fixed": 0.031, "same_class_recheck": 1.0,
           "share_rechecked": 0.125, "acc_pytorch": 0.677, "acc_recheck": 0.677}
    path.write_text(json.dumps({"started": "now", "machine": "a box", "headroom": 1.25, "fixed_margin": 0.15,
                                "runs": [run, {**run, "seed": 0, "acc_recheck": 0.6875}]}))
    table = recheck_margin_table(tmp_path)
    assert "1.25 times the largest gap shift on the task's first 300 unlabelled texts, at least 0.15" in table
    assert re.search(r"\|\s*forum\s*\|\s*minilm\s*\|\s*1\s*\|\s*256\s*\|\s*0.46\s*\|\s*0.575\s*\|\s*0.958\s*\|"
                     r"\s*0.969\s*\|\s*0.031\s*\|\s*1\s*\|\s*0.125\s*\|\s*0\s*\|", table)
    assert re.search(r"\|\s*forum\s*\|\s*minilm\s*\|\s*0\s*\|.*\|\s*1.05\s*\|", table)


def test_teacher_gap_says_which_recipe_keeps_every_student_at_its_teacher():
    sys.path.insert(0, str(ROOT / "benchmarks"))
    import pandas as pd
    from report import teacher_gap

    def runs(task: str, recipe: str, kept: list[float], window: int = 128, recorded: bool = True) -> list[dict]:
        label = recipe + (f" window={window}" if window != 128 else "")  # as report.flatten labels them
        return [{"task": task, "teacher": "seed", "recipe": label, "recipe_at_any_window": recipe, "guard_folds": 1,
                 "kept_acc": acc, "teacher_acc": 0.8, "window": window, "window_recorded": recorded} for acc in kept]

    frame = pd.DataFrame(runs("bank", "v3", [0.8, 0.82, 0.81]) + runs("forum", "v3", [0.7] * 3, recorded=False)
                         + runs("forum", "v3", [0.85, 0.86, 0.84], window=256)
                         + runs("bank", "lpft", [0.79, 0.8, 0.8]) + runs("forum", "lpft", [0.9], window=256)
                         + runs("bank", "cft", [0.9]) + runs("forum", "cft", [0.9] * 3, window=256)
                         + [{**runs("bank", "v3", [0.1])[0], "teacher": "local:smollm2-135m"}])
    table = teacher_gap(frame).set_index("recipe")
    assert table.loc["v3"].to_dict() == {"bank": "+1.0 (3)", "forum": "+5.0 (3)", "every task": "yes"}
    assert table.loc["lpft", "every task"] == "no" and table.loc["lpft", "bank"] == "-0.3 (3)"
    assert table.loc["cft", "every task"] == "unfinished" and table.loc["cft", "bank"] == "+10.0 (1)"
