"""Which task a model was trained on, read from its own training-logs.json.

The deployment notebook used to name banking's tarball and test set: after
training on another task it unpacked a stale banking model over the new one, or
scored the new model on banking's test set (about 0%). The model knows its task,
so the defaults come from it.
"""

from __future__ import annotations

import json
from pathlib import Path

LOGS = "training-logs.json"


def trained_task(model_dir: str | Path) -> dict | None:
    """The task name and folder name a model folder was trained on; None without readable logs.

    Models exported before ``task_folder`` was recorded fall back to the usual
    ``data-<task>`` folder name.
    """
    logs = training_logs(model_dir)
    if logs is None or not isinstance(logs.get("task"), str):
        return None
    return {"task": logs["task"], "task_folder": logs.get("task_folder") or f"data-{logs['task']}"}


def training_logs(model_dir: str | Path) -> dict | None:
    """The run record a model folder carries (task, teacher, evaluation, ...); None if unreadable."""
    try:
        logs = json.loads((Path(model_dir) / LOGS).read_text())
    except (OSError, ValueError):
        return None
    return logs if isinstance(logs, dict) else None


def default_tar(model_tar: str | Path | None, model_dir: str | Path) -> Path | None:
    """MODEL_TAR if given, else the tarball the training run of `model_dir` wrote beside it.

    That tarball is ``<task>-model.tar`` next to the model folder (what the training
    notebook writes); a tarball of another task is never picked by default.
    """
    if model_tar:
        return Path(model_tar)
    found = trained_task(model_dir)
    return Path(model_dir).parent / f"{found['task']}-model.tar" if found else None


def default_test_csv(test_csv: str | Path | None, model_dir: str | Path) -> Path | None:
    """TEST_CSV if given, else test.csv of the task folder named in the model's logs (`task_file`)."""
    return Path(test_csv) if test_csv else task_file(model_dir, "test.csv")


def task_file(model_dir: str | Path, name: str) -> Path | None:
    """A file of the task folder named in the model's logs, looked for next to the model folder
    (the repository root when the training notebook wrote ``../model``); None when it is not there."""
    found = trained_task(model_dir)
    path = found and Path(model_dir).resolve().parent / found["task_folder"] / name
    return path if path and path.is_file() else None


def unlabelled_texts(model_dir: str | Path, limit: int) -> list[str] | None:
    """The first ``limit`` unlabelled texts (unstructured.csv) of the model's task folder; None when
    there is none to read.

    They are the traffic a served model will see, and never its test rows, so the int8 export
    measures on them how far int8 moves this model's answers (`quantize.calibrate_margin`)."""
    return first_texts(task_file(model_dir, "unstructured.csv"), limit)


def first_texts(csv_path: Path | None, limit: int) -> list[str] | None:
    """The first ``limit`` texts of a CSV (read by the deployment rules), or None when there is none to read."""
    from helpers.deploy import CsvError, read_texts

    if csv_path is None:
        return None
    try:
        return read_texts(Path(csv_path))["text"].head(limit).tolist() or None
    except CsvError:
        return None


def first_text(csv_path: Path | None) -> str | None:
    """The first text of a CSV (read by the deployment rules), or None when there is none to read.

    A sample sentence from the model's own test set is on topic for whatever task
    it was trained on; a hard-wired banking sentence was not.
    """
    texts = first_texts(csv_path, 1)
    return texts[0] if texts else None
