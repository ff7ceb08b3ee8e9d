"""A teacher of known accuracy for BANKING77 k-shot folders, and a supervised reference.

BANKING77's unlabelled rows come from its train split, so their true intents are
known (`build_banking77_task(..., truth_csv=...)` writes them beside, never into,
the task folder). `SimulatedTeacher` answers right with probability p and
otherwise with the class the seed classifier likes best among the wrong ones (a
realistic confusion). Its distribution puts p on its answer and spreads the rest
as the seed classifier does. It lives here, never as a teacher spec a user can
pick: it reads the answers.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.checks import normalise
from helpers.student import gold_rows
from helpers.task import Task
from helpers.teachers.base import Teacher
from helpers.teachers.seed import SeedTeacher


def read_truth(truth_csv: str | Path) -> dict[str, str]:
    """True intent of each unlabelled text, keyed by its normalised text."""
    frame = pd.read_csv(truth_csv)
    return {normalise(t): label for t, label in zip(frame["question"], frame["answer"])}


def is_right(text: str, p: float, seed: int) -> bool:
    """Whether the simulated teacher answers `text` right: a coin of bias p fixed by the text,
    so the teacher rebuilt without some seed rows (the guard's) errs on the same texts."""
    digest = hashlib.sha256(f"{seed}|{normalise(text)}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64 < p


def simulated_answer(truth: int, seed_probs: np.ndarray, right: bool, p: float) -> np.ndarray:
    """p on the answer (the truth, or the seed classifier's favourite wrong class), the rest
    shared out over the other classes in proportion to the seed classifier's probabilities."""
    wrong = np.where(np.arange(len(seed_probs)) == truth, -np.inf, seed_probs)
    answer = truth if right else int(np.argmax(wrong))
    rest = np.where(np.arange(len(seed_probs)) == answer, 0.0, seed_probs + 1e-12)
    return np.where(np.arange(len(seed_probs)) == answer, p, (1 - p) * rest / rest.sum())


class SimulatedTeacher(Teacher):
    """Right with probability p on texts whose true intent it is given (see module docstring)."""

    def __init__(self, task: Task, truth: dict[str, str], p: float, seed: int = 0):
        super().__init__(task, f"simulated:p={p}:seed={seed}")
        self.truth, self.p, self.seed = truth, p, seed
        self.seed_teacher = SeedTeacher(task)

    def refit(self, task: Task, held_out: frozenset[int] = frozenset()) -> SimulatedTeacher:
        """Same answers key; the seed classifier that shapes its errors learns from `task`'s rows."""
        return type(self)(task, self.truth, self.p, self.seed)

    def predict(self, texts: list[str]) -> list[tuple[np.ndarray, bool]]:
        index = {c: i for i, c in enumerate(self.task.classes)}
        seed_probs = [probs for probs, _ in self.seed_teacher.predict(texts)]
        return [(simulated_answer(index[self.truth[normalise(t)]], q, is_right(t, self.p, self.seed), self.p),
                 True) for t, q in zip(texts, seed_probs)]


def supervised_rows(texts: list[str], truth: dict[str, str], classes: list[str]) -> pd.DataFrame:
    """The texts with their true intents as gold rows: what a plain fine-tune would learn from."""
    frame = pd.DataFrame({"text": texts, "label": [truth[normalise(t)] for t in texts]})
    return gold_rows(frame, classes).assign(source="truth")


def build_dev_source(source: str | Path, out_dir: str | Path, test_rows: int = 1000, seed: int = 0) -> Path:
    """A BANKING77-shaped folder made from its *train* split only: `test_rows` random train rows
    become the dev test set, so recipes are tuned without ever reading the real test set."""
    source, out = Path(source), Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    train = pd.read_csv(source / "train.csv").sample(frac=1.0, random_state=10_000 + seed)
    train.iloc[test_rows:].to_csv(out / "train.csv", index=False)
    train.iloc[:test_rows].to_csv(out / "test.csv", index=False)
    (out / "categories.json").write_text(json.dumps(json.loads((source / "categories.json").read_text())))
    return out
