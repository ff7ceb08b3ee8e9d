"""Benchmarks: one task through the whole pipeline, every number in one JSON.

Also builds few-shot task folders from BANKING77 (read in place from
../shared/benchmarks/banking77, never copied into the repo), and scores a
TF-IDF + logistic-regression baseline so the students have a cheap rival.
"""

from __future__ import annotations

import json
import os
import platform
import tempfile
from pathlib import Path

import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline

from helpers.evaluate import Evaluation, evaluate_predictions
from helpers.recipes import DEFAULT_RECIPE, StudentConfig
from helpers.task import Task


def machine() -> str:
    """This machine in a line: a record names where it was measured, since BENCHMARKS.md
    may be rendered on another machine than the one that timed it."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.is_file() else []
    cpu = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")),
               platform.processor())
    return f"{os.cpu_count()} CPU cores ({cpu}), Python {platform.python_version()}, no GPU"


def find_banking77(root: Path) -> Path | None:
    """BANKING77 as laid beside a checkout (``../shared``, as CI lays it) or inside it
    (``shared/``, as a copy of the working tree carries it); None when neither holds it."""
    candidates = (root.parent / "shared" / "benchmarks" / "banking77", root / "shared" / "benchmarks" / "banking77")
    return next((path for path in candidates if (path / "train.csv").is_file()), None)


def tfidf_baseline(task: Task) -> Evaluation:
    """Word and character n-gram TF-IDF with logistic regression, on the seed rows."""
    model = make_pipeline(TfidfVectorizer(analyzer="char_wb", ngram_range=(2, 5), sublinear_tf=True),
                          LogisticRegression(C=10.0, max_iter=2000))
    model.fit(task.train["text"], task.train["label"])
    return evaluate_predictions("tfidf_logreg", task.test["label"].tolist(),
                                list(model.predict(task.test["text"])), task.classes)


def scores(evaluation: Evaluation) -> dict:
    return {"accuracy": round(evaluation.accuracy, 4), "macro_f1": round(evaluation.macro_f1, 4),
            "accuracy_ci": [round(x, 4) for x in evaluation.accuracy_ci]}


def run_benchmark(task_dir: str | Path, teacher_spec: str, backbone: str = "minilm", seed: int = 0,
                  max_unlabelled: int | None = None, epochs: int | None = None, guard_folds: int = 1,
                  recipe: str = DEFAULT_RECIPE, settings: dict | None = None, search_trials: int = 0) -> dict:
    """Full pipeline on one task with the named training recipe, `settings` overriding its fields
    (a lever screened before it becomes a recipe) and `search_trials` Optuna trials over
    student-tuned's recipe (0: none); returns the benchmark record (see BENCHMARKS.md)."""
    from helpers.deploy import measure_latency
    from helpers.pipeline import run

    config = StudentConfig.recipe(recipe, **{"backbone": backbone, "seed": seed, "epochs": epochs, **(settings or {})})
    with tempfile.TemporaryDirectory() as tmp:  # no time budget: a record must not depend on how busy the machine was
        report = run(task_dir, teacher_spec, Path(tmp) / "model", config, max_unlabelled,
                     cache_dir=Path(tmp) / "cache", progress=False, guard_folds=guard_folds,
                     search_trials=search_trials, budget_minutes=None)
        student = report.result.student
        latency = measure_latency(student.model, report.task.test["text"].tolist(), student.tokenizer,
                                  size_path=Path(tmp) / "model" / "model.safetensors")
    teacher, base = report.evaluations[0], report.evaluations[1]
    tuned = report.evaluations[2] if len(report.evaluations) > 2 else base
    return {
        "task": report.task.name, "n_test": len(report.task.test), "seed": seed, "recipe": recipe,
        "settings": settings or {}, "search_trials": search_trials,
        "window": {"max_length": student.config.max_length, "group_by_length": student.config.group_by_length},
        "teacher": {"spec": teacher_spec, **scores(teacher),
                    "texts_per_s": round(1 / teacher.seconds_per_text, 2) if teacher.seconds_per_text else None},
        "student_base": scores(base),
        "student_tuned": {**scores(tuned), "kept": report.result.chosen,
                          "train_seconds": round(report.result.student.train_seconds, 1),
                          "p50_ms_batch1": round(latency["p50_ms"], 2),
                          "texts_per_s_batch32": round(latency["texts_per_second"], 1),
                          "size_mb": round(latency["size_mb"], 1)},
        "baselines": {"tfidf_logreg": scores(tfidf_baseline(report.task))},
        "data": report.result.stats, "total_seconds": round(report.seconds, 1)}


def describe_intent(name: str) -> str:
    """A plain description from a BANKING77 intent name (the dataset ships none)."""
    return f"The customer's message is about: {name.replace('_', ' ')}."


def build_banking77_task(source: str | Path, k: int, out_dir: str | Path, max_unlabelled: int = 2000,
                         seed: int = 0, truth_csv: str | Path | None = None) -> Path:
    """A k-shot task folder: k train rows per intent, the rest of train unlabelled, official test.

    `truth_csv` (a path outside the folder) receives the true intents of the unlabelled
    rows, so a benchmark can simulate a teacher of known accuracy; the task never sees it.
    """
    source, out = Path(source), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = pd.read_csv(source / "train.csv").sample(frac=1.0, random_state=seed)
    intents = json.loads((source / "categories.json").read_text())
    shots = train.groupby("category", sort=False).head(k)
    rest = train.drop(index=shots.index).head(max_unlabelled)
    job = {"task_description": "Online-banking customer messages; decide which of 77 intents the "
                               "customer has.", "classes_description": {c: describe_intent(c) for c in intents}}
    (out / "job_description.json").write_text(json.dumps(job, indent=2))
    to_rows = lambda f: f.rename(columns={"text": "question", "category": "answer"})  # noqa: E731
    to_rows(shots)[["question", "answer"]].to_csv(out / "train.csv", index=False)
    to_rows(pd.read_csv(source / "test.csv"))[["question", "answer"]].to_csv(out / "test.csv", index=False)
    rest.rename(columns={"text": "context"})[["context"]].to_csv(out / "unstructured.csv", index=False)
    if truth_csv is not None:
        to_rows(rest)[["question", "answer"]].to_csv(truth_csv, index=False)
    return out
