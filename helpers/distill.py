"""Distillation: seed rows + teacher-labelled corpus -> a student at least as good as both.

The recipe, in order:
1. carve a validation split from the seed rows (the test set is never touched);
2. train student-base on the seed rows alone (the bar to beat);
3. let the teacher label the unstructured corpus (leaked rows removed, labels capped
   per class so a biased teacher cannot flood one class);
4. train student-tuned on gold + teacher rows;
5. keep whichever student is better on validation: a weak teacher never makes
   the user's model worse.
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.embeddings import max_similarity
from helpers.generate import synthesize
from helpers.student import StudentConfig, TrainedStudent, gold_rows, train_student
from helpers.task import Task, normalise
from helpers.teachers.base import Teacher, TeacherLabels

NEAR_DUPLICATE = 0.95
CAP_RATIO = 1.5


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


def drop_test_leaks(texts: list[str], test_texts: list[str]) -> tuple[list[str], int]:
    """Remove texts identical or nearly identical (cosine >= 0.95) to a test text."""
    test_keys = {normalise(t) for t in test_texts}
    kept = [t for t in texts if normalise(t) not in test_keys]
    similar = max_similarity(kept, test_texts) >= NEAR_DUPLICATE
    kept = [t for t, s in zip(kept, similar) if not s]
    return kept, len(texts) - len(kept)


def sample_unlabelled(task: Task, max_rows: int | None, seed: int) -> list[str]:
    """Up to `max_rows` distinct unlabelled texts, in a seeded random order."""
    texts = list(dict.fromkeys(task.unstructured["text"].tolist()))
    order = np.random.default_rng(seed).permutation(len(texts))
    texts = [texts[i] for i in order]
    return texts if max_rows is None else texts[:max_rows]


def least_certain(student: TrainedStudent, texts: list[str], budget: int | None) -> list[str]:
    """The `budget` texts the seed-only student is least sure of (smallest top-2 margin).

    Teacher calls cost time or money; where the student is already confident the
    teacher mostly repeats it, so those calls are the first to save.
    """
    if budget is None or budget >= len(texts):
        return texts
    probs = np.sort(student.predict_proba(texts), axis=1)
    margin = probs[:, -1] - probs[:, -2]
    return [texts[i] for i in sorted(np.argsort(margin, kind="stable")[:budget])]


def select_teacher_rows(texts: list[str], labels: TeacherLabels, cap_ratio: float = CAP_RATIO
                        ) -> tuple[list[int], dict[str, int]]:
    """Valid answers, at most cap_ratio x the even share per class, most confident first."""
    valid = np.flatnonzero(labels.valid)
    cap = max(1, math.ceil(cap_ratio * len(valid) / len(labels.classes)))
    top = labels.probs.argmax(axis=1)
    chosen, dropped = [], {}
    for k, name in enumerate(labels.classes):
        members = valid[top[valid] == k]
        members = members[np.argsort(-labels.confidence[members], kind="stable")]
        chosen += members[:cap].tolist()
        dropped[name] = max(0, len(members) - cap)
    return sorted(chosen), dropped


def teacher_rows(texts: list[str], labels: TeacherLabels, temperature: float) -> pd.DataFrame:
    """Soft targets p^(1/T) renormalised, weighted by the teacher's confidence."""
    softened = labels.probs ** (1.0 / temperature)
    softened /= softened.sum(axis=1, keepdims=True)
    return pd.DataFrame({"text": texts, "soft_targets": softened.tolist(),
                         "sample_weight": labels.confidence, "temperature": temperature,
                         "source": "teacher"})


@dataclass
class DistillResult:
    """Everything the report and the export need."""

    student_base: TrainedStudent
    student_tuned: TrainedStudent | None
    chosen: str
    teacher_labels: TeacherLabels | None
    unlabelled_texts: list[str]
    stats: dict = field(default_factory=dict)

    def labelled_examples(self) -> pd.DataFrame:
        """Unlabelled texts with the teacher's label and confidence, least sure first."""
        labels = self.teacher_labels
        frame = pd.DataFrame({"text": self.unlabelled_texts, "teacher_label": labels.labels,
                              "confidence": labels.confidence.round(3)})
        return frame.sort_values("confidence", kind="stable").reset_index(drop=True)

    @property
    def student(self) -> TrainedStudent:
        return self.student_tuned if self.chosen == "student-tuned" else self.student_base


def choose_student(base: dict, tuned: dict | None) -> str:
    """student-tuned unless it is worse than student-base on held-out accuracy, then macro-F1.

    Validation loss is not compared: a student taught with softened targets is
    less confident by design, which raises its loss without making it worse.
    """
    if tuned is None:
        return "student-base"
    key = lambda s: (round(s["accuracy"], 6), round(s["f1"], 6))  # noqa: E731
    return "student-tuned" if key(tuned) >= key(base) else "student-base"


def pooled_scores(pairs: list[tuple[np.ndarray, np.ndarray]]) -> dict:
    """Accuracy and macro-F1 over the held-out rows of every fold together."""
    from helpers.evaluate import macro_f1

    predicted = np.concatenate([p for p, _ in pairs])
    truth = np.concatenate([t for _, t in pairs])
    return {"accuracy": float((predicted == truth).mean()), "f1": macro_f1(truth, predicted),
            "rows": len(truth)}


def guard_scores(task: Task, taught: pd.DataFrame, splits: list, trained: tuple[TrainedStudent, ...],
                 config: StudentConfig, work: Path, progress: bool, resume: bool) -> dict[str, dict]:
    """Held-out scores of both recipes, pooled over `len(splits)` folds of the seed rows.

    Fold 0 reuses the students already trained; each further fold trains another
    pair on other rows. One split of 24 seed rows holds out 4: one lucky row
    decided. Three folds judge on 12 at three times the training cost.
    """
    pairs: dict[str, list] = {"student-base": [], "student-tuned": []}
    for fold, (train, validation) in enumerate(splits):
        students = trained
        if fold:
            rows = gold_rows(train, task.classes)
            recipes = {"base": rows, "tuned": pd.concat([rows, taught], ignore_index=True)}
            students = tuple(train_student(data, validation, task.classes, config,
                                           work / f"fold{fold}-{name}", progress, resume)
                             for name, data in recipes.items())
        truth = np.array([task.classes.index(c) for c in validation["label"]])
        for name, student in zip(pairs, students):
            pairs[name].append((student.predict_proba(validation["text"].tolist()).argmax(1), truth))
    return {name: pooled_scores(found) for name, found in pairs.items()}


def distill(task: Task, teacher: Teacher | None, config: StudentConfig | None = None,
            max_unlabelled: int | None = None, cache_dir: str | Path | None = None,
            work_dir: str | Path | None = None, progress: bool = True,
            teacher_budget: int | None = None, synthetic_per_class: int = 0,
            resume: bool = False, guard_folds: int = 1) -> DistillResult:
    """Run the whole recipe (see module docstring) and return both students.

    Args:
        max_unlabelled: Use at most this many unlabelled rows (None: all).
        teacher_budget: Ask the teacher about at most this many rows, those the
            seed-only student is least sure of (None: every row).
        synthetic_per_class: New texts per class for a teacher that can write
            (has ``chat``); 0 turns generation off.
        work_dir: Where checkpoints go (None: a temporary folder, removed after).
        resume: Continue trainings killed part-way from their last checkpoint in
            `work_dir` (the teacher's answers come back from `cache_dir`).
        guard_folds: Folds of the seed rows the never-worse guard pools (1: one
            validation split; k: k times the training, a steadier verdict).
    """
    if guard_folds < 1:
        raise ValueError(f"guard_folds must be 1 or more, got {guard_folds}")
    if work_dir is None and resume:
        raise ValueError("resume needs the work_dir where the interrupted run saved its checkpoints")
    with working_folder(work_dir) as work:
        return run_recipe(task, teacher, config or StudentConfig(), max_unlabelled, cache_dir, work,
                          progress, teacher_budget, synthetic_per_class, resume, guard_folds)


@contextmanager
def working_folder(work_dir: str | Path | None) -> Iterator[Path]:
    """The user's checkpoint folder, or a temporary one that is removed afterwards."""
    if work_dir is not None:
        yield Path(work_dir)
        return
    with tempfile.TemporaryDirectory(prefix="distill-") as tmp:
        yield Path(tmp)


def run_recipe(task: Task, teacher: Teacher | None, config: StudentConfig, max_unlabelled: int | None,
               cache_dir: str | Path | None, work: Path, progress: bool, teacher_budget: int | None,
               synthetic_per_class: int, resume: bool, guard_folds: int) -> DistillResult:
    """The steps of the module docstring, checkpointing under `work` (see `distill`)."""
    splits = [split_validation(task.train, config.seed, fold=fold) for fold in range(guard_folds)]
    train, validation = splits[0]
    seed_rows = gold_rows(train, task.classes)
    base = train_student(seed_rows, validation, task.classes, config, work / "base", progress, resume)
    texts, leaked = drop_test_leaks(sample_unlabelled(task, max_unlabelled, config.seed),
                                    task.test["text"].tolist())
    texts = least_certain(base, texts, teacher_budget)
    stats = {"seed_rows": len(train), "validation_rows": len(validation), "dropped_test_leaks": leaked}
    if teacher is None or not texts:
        return DistillResult(base, None, "student-base", None, texts, stats)
    labels = teacher.label(texts, cache_dir=cache_dir, progress=progress, desc="teacher labelling")
    chosen, capped = select_teacher_rows(texts, labels)
    taught = teacher_rows([texts[i] for i in chosen], labels.select(chosen), config.temperature)
    stats.update(teacher_rows=len(taught), invalid=int((~labels.valid).sum()), capped_per_class=capped)
    if synthetic_per_class and hasattr(teacher, "chat"):
        written, written_labels, stats["synthetic"] = synthesize(task, teacher, synthetic_per_class, config.seed)
        if len(written):
            taught = pd.concat([taught, teacher_rows(written["text"].tolist(), written_labels,
                                                     config.temperature)], ignore_index=True)
    tuned = train_student(pd.concat([seed_rows, taught], ignore_index=True), validation, task.classes,
                          config, work / "tuned", progress, resume)
    stats["guard"] = {"folds": guard_folds,
                      **guard_scores(task, taught, splits, (base, tuned), config, work, progress, resume)}
    chosen = choose_student(stats["guard"]["student-base"], stats["guard"]["student-tuned"])
    return DistillResult(base, tuned, chosen, labels, texts, stats)
