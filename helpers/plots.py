"""Plots for the notebooks: each takes results and returns a matplotlib Figure."""

from __future__ import annotations

import matplotlib

matplotlib.use(matplotlib.get_backend() if "inline" in matplotlib.get_backend() else "Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402


def class_balance(task):
    """Rows per class in train and test: is every class represented?"""
    counts = pd.DataFrame({"train": task.train["label"].value_counts(),
                           "test": task.test["label"].value_counts()}).reindex(task.classes).fillna(0)
    ax = counts.plot.barh(figsize=(7, 0.4 * len(task.classes) + 1.5))
    ax.set_xlabel("rows")
    ax.invert_yaxis()
    ax.set_title(f"Class balance: {task.name}")
    return finish(ax)


def confusion_heatmap(evaluation):
    """Which classes get mixed up (rows: true class, columns: predicted)."""
    matrix = evaluation.confusion
    fig, ax = plt.subplots(figsize=(0.6 * len(matrix) + 3, 0.5 * len(matrix) + 2.5))
    ax.imshow(matrix.values, cmap="Blues")
    ax.set_xticks(range(len(matrix)), [short(c) for c in matrix.columns], rotation=45, ha="right")
    ax.set_yticks(range(len(matrix)), [short(c) for c in matrix.index])
    for (i, j), value in np.ndenumerate(matrix.values):
        ax.text(j, i, str(value), ha="center", va="center", fontsize=8)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(f"{evaluation.name}: accuracy {evaluation.accuracy:.2f}")
    return finish(ax)


def label_distribution(labels):
    """How the teacher spread the unlabelled texts over classes (a flood is a warning sign)."""
    counts = pd.Series(labels.labels).value_counts().reindex(labels.classes).fillna(0)
    ax = counts.plot.barh(figsize=(7, 0.4 * len(labels.classes) + 1.5), color="tab:orange")
    ax.invert_yaxis()
    ax.set_xlabel("unlabelled texts")
    ax.set_title("Teacher labels on the unstructured corpus")
    return finish(ax)


def training_curves(logs: pd.DataFrame, title: str = "student"):
    """Training loss, validation loss, and validation accuracy/F1, per evaluation step.

    Training loss gets its own panel: for student-tuned it is the distillation loss
    on soft targets (scaled by T^2), which sits far above a validation loss measured
    as plain cross-entropy on gold rows; on one axis it looked like a failure.
    """
    fig, (train, valid, scores) = plt.subplots(1, 3, figsize=(12, 3.2))
    values = logs.apply(pd.to_numeric, errors="coerce")  # a step without a logged train loss is a gap
    train.plot(values["step"], values["train_loss"], marker="o")
    train.set_title(f"{title}: training loss")
    valid.plot(values["step"], values["validation_loss"], marker="o", color="tab:orange")
    valid.set_title("validation loss")
    for column in ("validation_accuracy", "validation_f1"):
        scores.plot(values["step"], values[column], marker="o", label=column.removeprefix("validation_"))
    scores.legend()
    scores.set_ylim(0, 1.05)
    scores.set_title("validation accuracy and macro-F1")
    for ax in (train, valid, scores):
        ax.set_xlabel("optimizer step")
    fig.tight_layout()
    return fig


def comparison_bars(evaluations):
    """Accuracy of teacher and students with 95% bootstrap intervals."""
    names = [e.name for e in evaluations]
    values = np.array([e.accuracy for e in evaluations])
    low = values - np.array([e.accuracy_ci[0] for e in evaluations])
    high = np.array([e.accuracy_ci[1] for e in evaluations]) - values
    fig, ax = plt.subplots(figsize=(7, 3))
    ax.barh(names, values, xerr=[low, high], capsize=4, color=["tab:gray", "tab:blue", "tab:green"][:len(names)])
    ax.set_xlim(0, 1)
    ax.invert_yaxis()
    ax.set_xlabel("test accuracy (95% bootstrap interval)")
    return finish(ax)


def short(name: str, limit: int = 22) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "…"


def finish(ax):
    fig = ax.figure
    fig.tight_layout()
    return fig
