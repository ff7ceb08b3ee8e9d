"""What every teacher is: texts in, one probability distribution over the classes out.

A teacher answers with a *distribution* (a soft label), not just a class, so the
student can learn how sure the teacher was. Answers are cached on disk as they
arrive: an interrupted run restarts without asking the teacher again.
"""

from __future__ import annotations

import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from tqdm import tqdm  # plain text bar: a notebook widget bar shows as an empty box in static views

from helpers.task import Task
from helpers.teachers.cache import LabelCache

WORD = re.compile(r"\S+")


@dataclass
class TeacherLabels:
    """The teacher's answers for a list of texts.

    Args:
        classes: Class names, the column order of ``probs``.
        probs: Array (n_texts, n_classes); each row sums to 1.
        valid: Whether the teacher gave a usable answer for each text (invalid rows
            are uniform and should not be trained on).
    """

    classes: list[str]
    probs: np.ndarray
    valid: np.ndarray

    @property
    def labels(self) -> list[str]:
        return [self.classes[i] for i in self.probs.argmax(axis=1)]

    @property
    def confidence(self) -> np.ndarray:
        return self.probs.max(axis=1)

    def select(self, index) -> TeacherLabels:
        """The answers for a subset of the texts, in the order of `index`."""
        return TeacherLabels(self.classes, self.probs[index], self.valid[index])


def fit_words(text: str, limit: int) -> str:
    """`text` if it has at most `limit` words, else its first 3/4 and last 1/4 of `limit`
    words around a marker saying how many were left out.

    A 2,000-word post would overflow a small LLM's context or a server's; the start
    usually says what the text is about and the end often how it turned out, so
    both are kept, with line breaks intact.
    """
    words = list(WORD.finditer(text))
    if len(words) <= limit:
        return text
    head, tail = words[(limit * 3) // 4 - 1], words[len(words) - (limit - (limit * 3) // 4)]
    return (f"{text[:head.end()]} [... {len(words) - limit:,} words left out ...] "
            f"{text[tail.start():]}")


class Teacher(ABC):
    """A model that labels texts for one task. Subclasses implement `predict`."""

    prompt_version = "v1"
    text_words: int | None = None  # words of one text the teacher reads; None: the whole text

    def __init__(self, task: Task, spec: str):
        self.task = task
        self.spec = spec

    @property
    def id(self) -> str:
        """Cache key part: a changed prompt, model or seed rows invalidates old answers."""
        return f"{cache_spec(self.spec)}|{self.prompt_version}|seed={seed_fingerprint(self.task)}"

    @property
    def size_mb(self) -> float | None:
        """Weights a user would keep to run this teacher, in MB; None when they live elsewhere
        (a server, a hub) and nothing here can measure them."""
        return None

    def refit(self, task: Task, held_out: frozenset[int] = frozenset()) -> Teacher:
        """The same teacher built on `task`'s seed rows; `held_out` rows may be scored, not learnt from.

        A teacher that never reads train.csv may return ``self``.
        """
        raise NotImplementedError(
            f"{type(self).__name__} cannot be rebuilt without some seed rows, which distillation needs "
            "(see Teacher.without): implement refit(task, held_out), returning self if it never reads "
            "train.csv")

    def without(self, rows: Collection) -> Teacher:
        """This teacher as if the seed rows `rows` (train frame index) did not exist.

        The never-worse guard judges both students on seed rows held out of their
        training. A teacher that learnt from those rows passes them on to
        student-tuned through its labels, and tuned then looks better than it is
        (on BANKING77 5-shot the guard kept it in 3 of 3 seeds; it lost on test
        each time). So the labels student-tuned learns from come from this copy.
        """
        return self.refit(replace(self.task, train=self.task.train.drop(index=list(rows))))

    @abstractmethod
    def predict(self, texts: list[str]) -> list[tuple[np.ndarray, bool]]:
        """Distribution over `task.classes` and validity, for each text."""

    def stream(self, texts: list[str], batch_size: int = 8) -> Iterator[tuple[int, tuple[np.ndarray, bool]]]:
        """``(index, answer)`` pairs, `batch_size` texts per `predict`; a server teacher overrides
        it to hand each answer over the moment it arrives, in any order."""
        for start in range(0, len(texts), batch_size):
            yield from enumerate(self.predict(texts[start:start + batch_size]), start)

    def label(self, texts: list[str], cache_dir: str | Path | None = None, batch_size: int = 8,
              progress: bool = True, desc: str = "teacher") -> TeacherLabels:
        """Label texts, reusing and extending the on-disk cache.

        Each answer is written to the cache as soon as `stream` hands it over, so
        killing the process loses nothing already answered (a local model: at most
        the batch being scored).
        """
        cache = LabelCache(cache_dir, self.id, self.task.classes) if cache_dir else None
        answers = {i: cache.get(t) for i, t in enumerate(texts)} if cache is not None else {}
        todo = [i for i in range(len(texts)) if answers.get(i) is None]
        with tqdm(total=len(texts), initial=len(texts) - len(todo), desc=desc, disable=not progress,
                  mininterval=2) as bar:
            for at, answer in self.stream([texts[i] for i in todo], batch_size):
                answers[todo[at]] = answer
                if cache is not None:
                    cache.put(texts[todo[at]], *answer)
                bar.update(1)
        probs = np.array([answers[i][0] for i in range(len(texts))]).reshape(len(texts), -1)
        valid = np.array([answers[i][1] for i in range(len(texts))], dtype=bool)
        return TeacherLabels(self.task.classes, probs, valid)


def texts_shortened(teacher: Teacher, texts: list[str]) -> int:
    """How many of `texts` the teacher reads only in part (see `fit_words`), so a run can
    say so instead of cutting them silently."""
    limit = teacher.text_words
    return 0 if limit is None else sum(len(WORD.findall(t)) > limit for t in texts)


def cache_spec(spec: str) -> str:
    """The spec without ``concurrency=N``: how many requests are in flight does not change an
    answer, so answers cached at one concurrency are reused at another."""
    return re.sub(r"[?&]concurrency=\d+(?=$|\+)|(?<=\?)concurrency=\d+&|&concurrency=\d+(?=&)", "", spec)


def seed_fingerprint(task: Task) -> str:
    """Short hash of the seed rows (text, label): edited or fewer rows mean other answers."""
    rows = task.train[["text", "label"]].values.tolist()
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()[:12]


def uniform(n_classes: int) -> np.ndarray:
    """The answer recorded when a teacher gave nothing usable."""
    return np.full(n_classes, 1.0 / n_classes)
