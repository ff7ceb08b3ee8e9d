"""Retraining: the learner labels what the kept student is least sure of, and trains again.

Step 4 of the platform's own tutorial. The new labels live in a CSV of their own
next to the task folder (``<task folder>-my-labels.csv``), never in the task's
files: the task stays what its author wrote, and the learner's additions can be
read, fixed or deleted on their own.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.task import Task

LEAST_SURE = 8


def least_sure(student, texts: list[str], classes: list[str], k: int = LEAST_SURE) -> pd.DataFrame:
    """The k texts with the smallest gap between the student's two likeliest classes.

    Where the student hesitates a human label teaches it most; where it is sure,
    a label mostly repeats what it already believes.
    """
    if not texts:
        return pd.DataFrame(columns=["text", "student_guess", "margin"])
    probs = student.predict_proba(texts)
    top2 = np.sort(probs, axis=1)[:, -2:]
    order = np.argsort(top2[:, 1] - top2[:, 0], kind="stable")[:k]
    return pd.DataFrame({"text": [texts[i] for i in order],
                         "student_guess": [classes[probs[i].argmax()] for i in order],
                         "margin": (top2[order, 1] - top2[order, 0]).round(3)})


def labels_path(task: Task) -> Path:
    """Where the learner's own labels go: a CSV beside the task folder, not inside it."""
    folder = Path(task.directory).resolve()
    return folder.parent / f"{folder.name}-my-labels.csv"


def write_template(path: Path, texts: list[str]) -> bool:
    """Write the texts with an empty ``answer`` column for the learner to fill in.

    An existing file is the learner's work and is never overwritten (False then).
    """
    if path.exists():
        return False
    pd.DataFrame({"question": texts, "answer": ""}).to_csv(path, index=False)
    return True


def read_labels(path: str | Path, task: Task) -> pd.DataFrame:
    """Rows the learner labelled (empty answers skipped), with answers mapped to class names.

    Read by the training data's rules (`deploy.read_texts`); an answer that is not
    a class is an error naming its row, never a silent new class.
    """
    from helpers.deploy import CsvError, canonical_answers, read_texts

    path = Path(path)
    frame = read_texts(path)
    if "answer" not in frame:
        raise CsvError(f"{path} needs an 'answer' column with one of the task's classes per row")
    frame = frame[frame["answer"].astype(str).str.strip() != ""]
    frame = frame.assign(label=canonical_answers(frame, task.classes, path))
    return frame[["text", "label", "row"]].reset_index(drop=True)


def with_labels(task: Task, labels: pd.DataFrame) -> Task:
    """The task in memory with the learner's rows added to its seed rows (files untouched).

    Texts already in train or test are left out: a test text would leak into training.
    The labelled texts leave the unlabelled corpus, so the teacher does not label them again.
    """
    known = set(task.train["text"].str.lower()) | set(task.test["text"].str.lower())
    new = labels[~labels["text"].str.lower().isin(known)].drop_duplicates("text")
    train = pd.concat([task.train, new[["text", "label", "row"]]], ignore_index=True)
    unstructured = task.unstructured[~task.unstructured["text"].isin(set(new["text"]))]
    return dataclasses.replace(task, train=train, unstructured=unstructured)


def retrain_with(task: Task, teacher, labels: pd.DataFrame, config, max_unlabelled: int | None,
                 cache_dir, work_dir: Path, guard_folds: int = 1):
    """The whole recipe again on the task plus the learner's rows, with the teacher refit on them.

    The refit teacher reuses the loaded LLM (no reload) and learns the new rows too;
    checkpoints go to their own `work_dir` so the first run's stay as they were.
    """
    from helpers.distill import distill

    better = with_labels(task, labels)
    return better, distill(better, teacher.refit(better), config, max_unlabelled, cache_dir,
                           work_dir=work_dir, guard_folds=guard_folds)
