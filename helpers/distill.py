"""Distillation: seed rows + teacher-labelled corpus -> a student at least as good as both.

The recipe, in order:
1. carve a validation split from the seed rows (the test set is never touched);
2. train student-base on the seed rows alone (the bar to beat);
3. let the teacher, rebuilt without the validation rows, label the unstructured
   corpus (leaked rows removed, labels capped per class so a biased teacher cannot
   flood one class);
4. train student-tuned on gold + teacher rows (its recipe first searched, if asked: helpers/search.py);
5. keep student-tuned only if it beats student-base on held-out seed rows (a tie
   adds folds, then keeps student-base): a weak teacher never makes the user's
   model worse;
6. once the recipe has won, train student-tuned again with labels from the teacher
   fit on every seed row (select on held-out rows, then refit on all of them); with
   `learn_held_out` (opt-in) the kept student, base or tuned, learns every seed row too.
Step 5's extra folds and step 6 run only while the run's time budget holds them (helpers/budget.py).
"""

from __future__ import annotations

import math
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.budget import Budget
from helpers.embeddings import max_similarity
from helpers.explain import training_plan
from helpers.generate import synthesize
from helpers.guard import TIE_FOLDS, choose_student, guard_scores, split_validation
from helpers.student import StudentConfig, TrainedStudent, gold_rows, train_student
from helpers.task import Task, normalise
from helpers.teachers.base import Teacher, TeacherLabels, texts_shortened
from helpers.window import fit_to_task

NEAR_DUPLICATE = 0.95
CAP_RATIO = 1.5


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


@dataclass
class Recipe:
    """What every step of one distillation run shares (see `distill` for the meaning)."""

    task: Task
    config: StudentConfig
    work: Path
    cache_dir: str | Path | None = None
    progress: bool = True
    resume: bool = False
    synthetic_per_class: int = 0
    refit: bool = True
    tuned: StudentConfig | None = None  # student-tuned's own recipe (helpers/search.py); None: `config`
    corpus: list[str] = field(default_factory=list)  # unlabelled texts, for label-free warm starts
    budget: Budget = field(default_factory=lambda: Budget(None))  # when tie-break folds and the refit may run

    def train(self, rows: pd.DataFrame, validation: pd.DataFrame, name: str) -> TrainedStudent:
        """One student, checkpointed under work/name (its plan printed above Trainer's table)."""
        if self.progress:
            print(training_plan(name, self.config, len(rows), len(self.task.classes)))
        return train_student(rows, validation, self.task.classes, self.config, self.work / name,
                             self.progress, self.resume, self.corpus)

    def train_tuned(self, teacher: Teacher, texts: list[str], rows: pd.DataFrame, validation: pd.DataFrame,
                    name: str) -> tuple[TrainedStudent, TeacherLabels, dict]:
        """A student-tuned: the gold `rows` plus what `teacher` says of `texts` (see `teach`)."""
        if self.tuned is not None:
            return replace(self, config=self.tuned, tuned=None).train_tuned(teacher, texts, rows, validation, name)
        taught, labels, stats = self.teach(teacher, texts)
        return self.train(pd.concat([rows, taught], ignore_index=True), validation, name), labels, stats

    def teach(self, teacher: Teacher, texts: list[str]) -> tuple[pd.DataFrame, TeacherLabels, dict]:
        """Teacher rows for student-tuned: the corpus labelled and capped per class, plus
        synthetic texts when the teacher can write (checked against its own seed rows)."""
        labels = teacher.label(texts, cache_dir=self.cache_dir, progress=self.progress,
                               desc="teacher labelling")
        chosen, capped = select_teacher_rows(texts, labels)
        taught = teacher_rows([texts[i] for i in chosen], labels.select(chosen), self.config.temperature)
        stats = {"teacher_rows": len(taught), "invalid": int((~labels.valid).sum()), "capped_per_class": capped,
                 "teacher_texts_shortened": texts_shortened(teacher, texts)}
        if self.synthetic_per_class and hasattr(teacher, "chat"):
            written, written_labels, stats["synthetic"] = synthesize(teacher.task, teacher, self.synthetic_per_class,
                                                                     self.config.seed)
            if len(written):
                taught = pd.concat([taught, teacher_rows(written["text"].tolist(), written_labels,
                                                         self.config.temperature)], ignore_index=True)
        return taught, labels, stats


def distill(task: Task, teacher: Teacher | None, config: StudentConfig | None = None,
            max_unlabelled: int | None = None, cache_dir: str | Path | None = None,
            work_dir: str | Path | None = None, progress: bool = True,
            teacher_budget: int | None = None, synthetic_per_class: int = 0,
            resume: bool = False, guard_folds: int = 1, refit: bool = True, search_trials: int = 0,
            budget: Budget | None = None) -> DistillResult:
    """Run the whole recipe (see module docstring) and return both students.

    The student-tuned the guard judges learns from `teacher.without(validation rows)`:
    the teacher rebuilt on the same seed rows the students train on, so the guard's
    held-out rows are unseen by every model it compares. A kept student-tuned is then
    retrained from the full `teacher` (unless refit=False).

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
            validation split; k: k times the training and teacher labelling, a steadier
            verdict). A tie adds folds up to TIE_FOLDS; a tie after that keeps student-base.
        refit: When the guard keeps student-tuned, train it again from the teacher
            fit on every seed row (see `run_recipe`); with the recipe's `learn_held_out`,
            the kept student, base or tuned, is retrained on every seed row too
            (`delivered_rows`). False delivers the judged model.
        search_trials: Optuna trials over student-tuned's learning rate, epochs and temperature,
            scored on held-out seed rows (helpers/search.py); 0: off. student-base keeps `config`.
        budget: The run's time budget (helpers/budget.py): student-base and student-tuned
            always train; a tie-break fold or the refit runs only if it still fits.
            None: no limit.

    A `config` whose window is 0 gets one chosen from the task's texts (helpers/window.py).
    """
    if guard_folds < 1 or search_trials < 0:
        raise ValueError(f"guard_folds must be 1 or more (got {guard_folds}) and search_trials 0 or more "
                         f"(got {search_trials})")
    if work_dir is None and resume:
        raise ValueError("resume needs the work_dir where the interrupted run saved its checkpoints")
    with working_folder(work_dir) as work:
        recipe = Recipe(task, fit_to_task(config or StudentConfig(), task), work, cache_dir, progress, resume,
                        synthetic_per_class, refit, budget=budget or Budget(None))
        return run_recipe(recipe, teacher, max_unlabelled, teacher_budget, guard_folds, search_trials)


def delivered_rows(recipe: Recipe, seed_rows: pd.DataFrame, stats: dict) -> pd.DataFrame:
    """The gold rows the delivered student learns: with the recipe's `learn_held_out`, every seed row.

    The guard's verdict is in, so its held-out rows may now teach: on injury they are 7 of 42
    rows, and SetFit, which learns all 42, beat our students there. The refit's validation
    score is then no longer held out, so it suits a short fixed schedule (`cft`): early
    stopping on rows it learns would stop nothing. Opt-in (`--set learn_held_out=true`):
    measured with cft it moved banking +0.7 and injury -0.4 points, both inside the seed
    spread, at a third training run (benchmarks/NOTES.md).
    """
    if not recipe.config.learn_held_out:
        return seed_rows
    stats["learned_held_out_rows"] = len(recipe.task.train) - len(seed_rows)
    return gold_rows(recipe.task.train, recipe.task.classes)


@contextmanager
def working_folder(work_dir: str | Path | None) -> Iterator[Path]:
    """The user's checkpoint folder, or a temporary one that is removed afterwards."""
    if work_dir is not None:
        yield Path(work_dir)
        return
    with tempfile.TemporaryDirectory(prefix="distill-") as tmp:
        yield Path(tmp)


def run_recipe(recipe: Recipe, teacher: Teacher | None, max_unlabelled: int | None,
               teacher_budget: int | None, guard_folds: int, search_trials: int = 0) -> DistillResult:
    """The steps of the module docstring (see `distill`)."""
    task, seed = recipe.task, recipe.config.seed
    train, validation = split_validation(task.train, seed)
    seed_rows = gold_rows(train, task.classes)
    texts, leaked = drop_test_leaks(sample_unlabelled(task, max_unlabelled, seed), task.test["text"].tolist())
    recipe.corpus = texts
    with recipe.budget.timed("base"):
        base = recipe.train(seed_rows, validation, "base")
    texts = least_certain(base, texts, teacher_budget)
    stats = {"seed_rows": len(train), "validation_rows": len(validation), "dropped_test_leaks": leaked}
    if teacher is None or not texts:
        return DistillResult(base, None, "student-base", None, texts, stats)
    if search_trials:
        from helpers.search import search_recipe

        # scored on a fold the guard never pools, so the guard's verdict stays unbiased
        tuned_config, stats["search"] = search_recipe(recipe, teacher, texts, search_trials,
                                                      fold=max(guard_folds, TIE_FOLDS))
        recipe = replace(recipe, tuned=tuned_config)
    with recipe.budget.timed("tuned"):
        tuned, labels, found = recipe.train_tuned(teacher.without(validation.index), texts, seed_rows, validation,
                                                  "tuned")
    stats.update(found, teacher_seed_rows=len(train))
    stats["guard"] = guard_scores(recipe, teacher, texts, (base, tuned), guard_folds)
    chosen = choose_student(stats["guard"]["student-base"], stats["guard"]["student-tuned"])
    stats["refit"] = recipe.refit
    if chosen == "student-tuned" and recipe.refit and recipe.budget.affords(("tuned",), "the refit of student-tuned"):
        # The guard judged a teacher that never saw its held-out rows, or its verdict would be
        # biased; but those rows make the teacher better (banking's student-tuned lost ~3 points
        # without them). The guard chose the recipe, so the delivered model gets the full teacher,
        # its student trained and stopped early on the same rows as before (with the recipe's
        # `learn_held_out`, trained on every seed row: `delivered_rows`).
        tuned, labels, found = recipe.train_tuned(teacher, texts, delivered_rows(recipe, seed_rows, stats),
                                                  validation, "tuned-refit")
        stats["refit_teacher"] = {**found, "teacher_seed_rows": len(task.train)}
    elif chosen == "student-base" and recipe.refit and recipe.config.learn_held_out \
            and recipe.budget.affords(("base",), "the refit of student-base on every seed row"):
        base = recipe.train(delivered_rows(recipe, seed_rows, stats), validation, "base-refit")
    if recipe.budget.limited:
        stats["budget"] = recipe.budget.summary()
    return DistillResult(base, tuned, chosen, labels, texts, stats)
