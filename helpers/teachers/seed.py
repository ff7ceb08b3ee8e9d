"""The seed-only classifier: MiniLM embeddings + logistic regression on train.csv.

It is the honest baseline every teacher must beat (a handful of gold rows
already go a long way), and a committee member that keeps a weak LLM in check.
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression

from helpers.archive import folder_size_mb
from helpers.embeddings import embed
from helpers.models import minilm_path
from helpers.task import Task
from helpers.teachers.base import Teacher


def fit_classifier(vectors: np.ndarray, labels: list[int], n_classes: int) -> LogisticRegression:
    """Logistic regression on unit vectors; C large enough for few, clean rows."""
    model = LogisticRegression(C=10.0, max_iter=2000)
    model.fit(vectors, labels)
    return model


def full_probs(model: LogisticRegression, vectors: np.ndarray, n_classes: int) -> np.ndarray:
    """Probabilities for every class, also those missing from the training rows."""
    probs = np.zeros((len(vectors), n_classes))
    probs[:, model.classes_] = model.predict_proba(vectors)
    return probs


def class_indices(task: Task) -> list[int]:
    """Each seed row's class as its index in `task.classes`, what the classifiers fit on."""
    index = {c: i for i, c in enumerate(task.classes)}
    return [index[label] for label in task.train["label"]]


class SeedTeacher(Teacher):
    """Logistic regression on sentence embeddings of the seed rows."""

    def __init__(self, task: Task, spec: str = "seed"):
        super().__init__(task, spec)
        self.targets = class_indices(task)
        self.vectors = self.embed(task.train["text"].tolist())
        self.model = fit_classifier(self.vectors, self.targets, len(task.classes))

    @property
    def size_mb(self) -> float:
        """The sentence embedder on disk (the fitted classifier adds a few kB)."""
        return folder_size_mb(minilm_path())

    def refit(self, task: Task, held_out: frozenset[int] = frozenset()) -> SeedTeacher:
        """A fresh classifier on `task`'s seed rows (every row is learnt from), of the same class."""
        return type(self)(task, self.spec)

    def embed(self, texts: list[str]) -> np.ndarray:
        """The vectors the classifier reads: the shipped sentence embedder's."""
        return embed(texts)

    def predict(self, texts: list[str]) -> list[tuple[np.ndarray, bool]]:
        probs = full_probs(self.model, self.embed(texts), len(self.task.classes))
        return [(row, True) for row in probs]

    def cross_validated(self, folds: int = 5) -> np.ndarray:
        """Out-of-fold probabilities on the seed rows, for fitting a committee."""
        targets = np.array(self.targets)
        fold = np.arange(len(targets)) % folds
        probs = np.zeros((len(targets), len(self.task.classes)))
        for k in range(folds):
            held = fold == k
            model = fit_classifier(self.vectors[~held], list(targets[~held]), len(self.task.classes))
            probs[held] = full_probs(model, self.vectors[held], len(self.task.classes))
        return probs
