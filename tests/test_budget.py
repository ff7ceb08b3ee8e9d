"""The run's time budget: the two students always train; a tie-break fold or the refit runs only if it fits.

Trainings are stand-ins that take a known time on a fake clock, so what the
budget decides is exact; the real trainings it gates are tested in test_student.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from conftest import make_task

from helpers.budget import Budget
from helpers.distill import Recipe, distill
from helpers.explain import distill_summary
from helpers.student import StudentConfig
from helpers.task import load_task
from helpers.teachers.seed import SeedTeacher

TRAINING_S = 100.0  # what each stand-in training takes on the fake clock
TRAIN = [("I want my money back", "refund"), ("please refund the order", "refund"),
         ("refund me for the broken kettle", "refund"), ("money back for my late order", "refund"),
         ("parcel has not arrived", "delivery"), ("where is my package", "delivery"),
         ("courier lost my box", "delivery"), ("delivery is two weeks late", "delivery")]


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class Student:
    """Right on every seed row, or wrong on every one."""

    def __init__(self, task, name: str, right: bool):
        self.task, self.name, self.right = task, name, right

    def predict_proba(self, texts):
        truth = dict(zip(self.task.train["text"], self.task.train["label"]))
        index = np.array([self.task.classes.index(truth[t]) for t in texts])
        return np.eye(2)[index if self.right else 1 - index]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_task(make_task(tmp_path_factory.mktemp("t") / "data-shop", train=TRAIN))


def run(task, monkeypatch, tmp_path, minutes: float | None, tuned_right: bool, base_right: bool = True):
    """distill with stand-in trainings of TRAINING_S each, on a fake clock."""
    clock, trained = Clock(), []

    def train(self, rows, validation, name):
        clock.now += TRAINING_S
        trained.append(name)
        return Student(task, name, right=tuned_right if "tuned" in name else base_right)

    monkeypatch.setattr(Recipe, "train", train)
    monkeypatch.setattr(Recipe, "teach", lambda self, teacher, texts: (pd.DataFrame(), None, {}))
    budget = Budget(minutes, clock=clock)
    result = distill(task, SeedTeacher(task), StudentConfig(), progress=False, work_dir=tmp_path, budget=budget)
    return result, trained


@pytest.mark.parametrize(("minutes", "folds"), [(5, 1), (10, 3), (None, 3)])
def test_tie_break_folds_run_only_while_the_budget_holds_another_pair(task, monkeypatch, tmp_path, minutes, folds):
    result, trained = run(task, monkeypatch, tmp_path, minutes, tuned_right=True)  # a tie
    assert result.stats["guard"]["folds"] == folds and len(trained) == 2 * folds
    assert ("budget" in result.stats) == (minutes is not None)
    assert result.chosen == "student-base"  # a tie keeps base, whether the extra folds ran or not
    skipped = result.stats.get("budget", {}).get("skipped", [])
    if folds == 1:  # 200 s used, 100 s left, a pair takes 200 s
        assert skipped == ["guard tie-break fold 2 skipped: it would take ~200 s and 100 s of the "
                           "5-minute budget are left"]
    else:
        assert skipped == []


@pytest.mark.parametrize(("minutes", "refit"), [(5, True), (3, False), (None, True)])
def test_the_refit_runs_only_if_another_tuned_training_fits(task, monkeypatch, tmp_path, minutes, refit):
    result, trained = run(task, monkeypatch, tmp_path, minutes, tuned_right=True, base_right=False)
    assert result.chosen == "student-tuned"
    assert trained == ["base", "tuned", "tuned-refit"][:3 if refit else 2]
    assert result.student_tuned.name == ("tuned-refit" if refit else "tuned")  # else delivered as judged
    assert ("refit_teacher" in result.stats) == refit
    if minutes == 3:  # 200 s used of 180: overrun, and the message never says a negative time is left
        assert result.stats["budget"]["skipped"] == [
            "the refit of student-tuned skipped: it would take ~100 s and 0 s of the 3-minute budget are left"]
        assert result.stats["budget"]["used_s"] == 200.0
        assert "Time budget: the refit of student-tuned skipped" in distill_summary(result)


def test_a_negative_budget_is_a_clear_error():
    with pytest.raises(ValueError, match="0 or None for no limit"):
        Budget(-1)
