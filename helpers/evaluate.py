"""Metrics with honest uncertainty: a 96-row test set moves ~1 point per error."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_recall_fscore_support


@dataclass
class Evaluation:
    """Scores of one model on one labelled set."""

    name: str
    accuracy: float
    macro_f1: float
    accuracy_ci: tuple[float, float]
    macro_f1_ci: tuple[float, float]
    per_class: pd.DataFrame
    confusion: pd.DataFrame
    seconds_per_text: float | None = None
    invalid: int = 0
    speed: dict | None = None  # a teacher's `payoff.teacher_speed`, kept in training-logs.json

    def row(self) -> dict:
        """One line of the comparison table."""
        return {"model": self.name, "accuracy": round(self.accuracy, 4),
                "accuracy 95% CI": f"{self.accuracy_ci[0]:.2f}-{self.accuracy_ci[1]:.2f}",
                "macro_f1": round(self.macro_f1, 4),
                "macro_f1 95% CI": f"{self.macro_f1_ci[0]:.2f}-{self.macro_f1_ci[1]:.2f}"}


def bootstrap_ci(values: np.ndarray) -> tuple[float, float]:
    """Percentile 95% interval of a metric's values over resampled test sets."""
    return float(np.percentile(values, 2.5)), float(np.percentile(values, 97.5))


def resampled_scores(gold: np.ndarray, pred: np.ndarray, rounds: int = 1000,
                     seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Accuracy and macro-F1 of `rounds` test sets resampled with replacement, all at once.

    Counted with numpy rather than by calling scikit-learn a thousand times: that took ~3.5 s
    per metric and model on 2 cores (~25 s of a default notebook run), for the same numbers
    (macro-F1 over the classes present in each resample, as ``f1_score`` averages).
    """
    labels, codes = np.unique(np.concatenate([gold, pred]).astype(str), return_inverse=True)
    k, n = len(labels), len(gold)
    idx = np.random.default_rng(seed).integers(0, n, size=(rounds, n))
    g, p = codes[:n][idx], codes[n:][idx]
    offset = np.arange(rounds)[:, None] * k
    right = g == p
    true_pos = np.bincount((offset + g)[right], minlength=rounds * k).reshape(rounds, k)
    support = np.bincount((offset + g).ravel(), minlength=rounds * k).reshape(rounds, k)
    predicted = np.bincount((offset + p).ravel(), minlength=rounds * k).reshape(rounds, k)
    present = support + predicted  # = 2 tp + fp + fn; 0 for a class absent from both
    f1 = np.divide(2 * true_pos, present, out=np.zeros((rounds, k)), where=present > 0)
    return right.mean(axis=1), f1.sum(axis=1) / (present > 0).sum(axis=1)


def macro_f1(gold, pred) -> float:
    return float(f1_score(gold, pred, average="macro", zero_division=0))


def evaluate_predictions(name: str, gold: list[str], pred: list[str], classes: list[str],
                         seconds_per_text: float | None = None, invalid: int = 0) -> Evaluation:
    """Accuracy, macro-F1 (both with bootstrap intervals), per-class table, confusion."""
    gold_a, pred_a = np.asarray(gold, dtype=object), np.asarray(pred, dtype=object)
    p, r, f, support = precision_recall_fscore_support(gold_a, pred_a, labels=classes, zero_division=0)
    per_class = pd.DataFrame({"precision": p, "recall": r, "f1": f, "support": support}, index=classes)
    confusion = pd.DataFrame(confusion_matrix(gold_a, pred_a, labels=classes), index=classes,
                             columns=classes)
    confusion.index.name, confusion.columns.name = "true", "predicted"
    accuracies, f1s = resampled_scores(gold_a, pred_a)
    return Evaluation(name, float(accuracy_score(gold_a, pred_a)), macro_f1(gold_a, pred_a),
                      bootstrap_ci(accuracies), bootstrap_ci(f1s), per_class.round(3), confusion,
                      seconds_per_text, invalid)


def comparison_table(evaluations: list[Evaluation]) -> pd.DataFrame:
    """Teacher vs student-base vs student-tuned, one row each."""
    columns = ["model", "accuracy", "accuracy 95% CI", "macro_f1", "macro_f1 95% CI"]
    return pd.DataFrame([e.row() for e in evaluations], columns=columns).set_index("model")


@dataclass
class TeacherReport:
    """The teacher on the test set, next to the seed-only baseline."""

    teacher: Evaluation
    baseline: Evaluation
    labels: object

    @property
    def warning(self) -> str | None:
        """Plain words when the teacher is weaker than the seed-only classifier."""
        if self.teacher.accuracy >= self.baseline.accuracy:
            return None
        return (f"The teacher ({self.teacher.accuracy:.0%} accuracy) is weaker than a classifier trained on "
                f"the seed rows alone ({self.baseline.accuracy:.0%}). Its labels can only help a little; "
                "the never-worse guard keeps the seed-only student if they hurt. For real gains configure "
                "a stronger teacher, e.g. TEACHER = 'openai:MODEL@http://127.0.0.1:8000/v1' (vLLM, "
                "Ollama, llama.cpp server) or 'hf:Qwen/Qwen2.5-7B-Instruct' on a GPU.")


def evaluate_teacher(task, teacher, cache_dir=None, progress: bool = True) -> TeacherReport:
    """Teacher accuracy, macro-F1, per-class scores, confusion, invalid answers, speed (timed uncached)."""
    import time

    from helpers.payoff import teacher_speed
    from helpers.teachers.seed import SeedTeacher

    texts, gold = task.test["text"].tolist(), task.test["label"].tolist()
    start = time.perf_counter()
    labels = teacher.label(texts, cache_dir=cache_dir, progress=progress, desc="teacher on test")
    seconds = (time.perf_counter() - start) / max(1, len(texts))
    evaluation = evaluate_predictions(f"teacher ({teacher.spec})", gold, labels.labels, task.classes,
                                      seconds, int((~labels.valid).sum()))
    evaluation.speed = teacher_speed(teacher, texts)
    seed = teacher if teacher.spec == "seed" else SeedTeacher(task)
    baseline = evaluate_predictions("seed-only classifier", gold,
                                    seed.label(texts, progress=False).labels, task.classes)
    return TeacherReport(evaluation, baseline, labels)


def evaluate_student(name: str, student, task) -> Evaluation:
    """A trained student on the test set."""
    import time

    texts = task.test["text"].tolist()
    start = time.perf_counter()
    probs = student.predict_proba(texts)
    seconds = (time.perf_counter() - start) / max(1, len(texts))
    pred = [task.classes[i] for i in probs.argmax(axis=1)]
    return evaluate_predictions(name, task.test["label"].tolist(), pred, task.classes, seconds)
