"""The never-worse guard: student-tuned is kept only if it beats student-base on seed rows
held out of both (the test set is never touched).

One split of a tiny seed set holds out a handful of rows, so the guard pools folds
(disjoint held-out rows per class) and adds folds by itself when the students tie.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from helpers.student import gold_rows

if TYPE_CHECKING:
    from helpers.distill import Recipe
    from helpers.student import TrainedStudent
    from helpers.teachers.base import Teacher

TIE_FOLDS = 3  # folds the never-worse guard goes up to when the students tie on held-out rows


def split_validation(train: pd.DataFrame, seed: int, fraction: float = 0.2, fold: int = 0
                     ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Stratified: ~fraction of each class (at least one when it has 2+ rows) to validation.

    Folds 0, 1, 2, ... hold out different rows of each class (disjoint while the
    class has rows left), so pooled folds judge on more rows than one split.
    """
    rng = np.random.default_rng(seed)
    held = []
    for _, group in train.groupby("label", sort=False):
        k = max(1, round(fraction * len(group))) if len(group) > 1 else 0
        order = rng.permutation(group.index.to_numpy())
        held += np.take(order, range(fold * k, fold * k + k), mode="wrap").tolist()
    return train.drop(index=held), train.loc[sorted(held)]


def choose_student(base: dict, tuned: dict | None) -> str:
    """student-tuned only if it beats student-base on held-out accuracy, then macro-F1.

    A tie keeps student-base: the teacher has not shown that it helps, and with a
    weak teacher ties hid losses (injury and spam lost 2-3 test rows after ties).
    Validation loss is not compared: a student taught with softened targets is
    less confident by design, which raises its loss without making it worse.
    """
    if tuned is None:
        return "student-base"
    return "student-tuned" if merit(tuned) > merit(base) else "student-base"


def merit(scores: dict) -> tuple[float, float]:
    """What the guard compares: held-out accuracy, then macro-F1 (rounded: float noise is no win)."""
    return round(scores["accuracy"], 6), round(scores["f1"], 6)


def tied(scores: dict[str, dict]) -> bool:
    """Both students equally good on the held-out rows (so far): the guard has learnt nothing."""
    return merit(scores["student-base"]) == merit(scores["student-tuned"])


def pooled_scores(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Accuracy and macro-F1 over the held-out rows of every fold together."""
    from helpers.evaluate import macro_f1

    predicted = np.concatenate([p for p, _ in pairs])
    truth = np.concatenate([t for _, t in pairs])
    return {"accuracy": float((predicted == truth).mean()), "f1": macro_f1(truth, predicted),
            "rows": len(truth)}


def guard_scores(recipe: Recipe, teacher: Teacher, texts: list[str], trained: tuple[TrainedStudent, ...],
                 folds: int) -> dict:
    """Held-out scores of both recipes, pooled over `folds` folds of the seed rows, more on a tie.

    Fold 0 reuses the students already trained; each further fold rebuilds the
    teacher without its own held-out rows, has it label the same texts, and trains
    another pair. One split of 24 seed rows holds out 4, and both students often
    get all 4 right: such a tie says nothing, so the guard then pools TIE_FOLDS
    folds. All of them, not just until one row differs: stopping at the first
    difference would let a single lucky row decide again. A tie-break fold runs
    only if the run's time budget still holds one more base + tuned pair.
    """
    classes, pairs = recipe.task.classes, {"student-base": [], "student-tuned": []}
    fold, target, scores = 0, folds, {}
    while fold < target:
        if fold >= folds and not recipe.budget.affords(("base", "tuned"), f"guard tie-break fold {fold + 1}"):
            break  # still tied: student-base is kept, as after a tie over every fold
        train, validation = split_validation(recipe.task.train, recipe.config.seed, fold=fold)
        students = trained
        if fold:
            rows = gold_rows(train, classes)
            students = (recipe.train(rows, validation, f"fold{fold}-base"),
                        recipe.train_tuned(teacher.without(validation.index), texts, rows, validation,
                                           f"fold{fold}-tuned")[0])
        truth = np.array([classes.index(c) for c in validation["label"]])
        for name, student in zip(pairs, students):
            pairs[name].append((student.predict_proba(validation["text"].tolist()).argmax(1), truth))
        scores = {name: pooled_scores(found) for name, found in pairs.items()}
        fold += 1
        if fold == target < TIE_FOLDS and tied(scores):
            target = TIE_FOLDS
    return {"folds": fold, "asked_folds": folds, **scores}
