"""A committee: several teachers' distributions pooled with weights fit on gold rows.

A tiny offline LLM alone labels worse than a classifier trained on the seed rows;
pooling lets each add what it knows. Weights are fit on seed rows that no member
saw (held out of the LLM's prompt, out-of-fold for the classifier), so a member
that only adds noise gets weight ~0 instead of dragging the labels down.
"""

from __future__ import annotations

import numpy as np

from helpers.task import Task
from helpers.teachers.base import Teacher

WEIGHT_GRID = np.linspace(0.0, 1.0, 11)
EPS = 1e-6


def pool(member_probs: list[np.ndarray], weights: np.ndarray) -> np.ndarray:
    """Weighted log-linear pooling (a product of experts), rows renormalised."""
    logits = sum(w * np.log(p + EPS) for w, p in zip(weights, member_probs))
    probs = np.exp(logits - logits.max(axis=1, keepdims=True))
    return probs / probs.sum(axis=1, keepdims=True)


def fit_weights(member_probs: list[np.ndarray], gold: np.ndarray) -> np.ndarray:
    """Two members: the smallest second-member weight within one standard error of the best.

    With a dozen held-out rows the best-scoring mix is mostly luck; the
    one-standard-error rule keeps the second member (the LLM) out unless it
    helps clearly.
    """
    def loglik(w: float) -> np.ndarray:
        probs = pool(member_probs, np.array([1 - w, w]))
        return np.log(probs[np.arange(len(gold)), gold] + EPS)
    scores = [loglik(w) for w in WEIGHT_GRID]
    best = int(np.argmax([s.mean() for s in scores]))
    standard_error = scores[best].std(ddof=1) / np.sqrt(len(gold)) if len(gold) > 1 else 0.0
    w = next(w for w, s in zip(WEIGHT_GRID, scores) if s.mean() >= scores[best].mean() - standard_error)
    return np.array([1 - w, w])


def held_out_rows(task: Task) -> frozenset[int]:
    """Every other seed row of each class: scored by members, never shown to them."""
    rank = task.train.groupby("label").cumcount()
    return frozenset(task.train.index[rank % 2 == 1])


class CommitteeTeacher(Teacher):
    """The seed classifier plus one LLM teacher, pooled with fitted weights."""

    def __init__(self, task: Task, spec: str, seed: Teacher, llm: Teacher, held_out: frozenset[int]):
        super().__init__(task, spec)
        self.members = [seed, llm]
        rows = sorted(held_out)
        gold = np.array([task.classes.index(c) for c in task.train.loc[rows, "label"]])
        seed_probs = seed.cross_validated()[task.train.index.get_indexer(rows)]  # rows are labels, not positions
        llm_probs = llm.label(task.train.loc[rows, "text"].tolist(), desc="fit committee").probs
        self.weights = fit_weights([seed_probs, llm_probs], gold)

    @property
    def id(self) -> str:
        return f"{super().id}|w={self.weights.round(2).tolist()}"

    def refit(self, task: Task, held_out: frozenset[int] = frozenset()) -> CommitteeTeacher:
        """Both members rebuilt on `task`'s seed rows and the weights fit again on its held-out half."""
        seed, llm = self.members
        rows = held_out_rows(task)
        return CommitteeTeacher(task, self.spec, seed.refit(task), llm.refit(task, rows), rows)

    @property
    def size_mb(self) -> float | None:
        """The members that are asked (weight > 0): a member with weight 0 never answers."""
        sizes = [m.size_mb for m, w in zip(self.members, self.weights) if w > 0]
        return None if None in sizes else sum(sizes)

    @property
    def text_words(self) -> int | None:
        """The shortest window of the members that are asked (weight > 0)."""
        windows = [m.text_words for m, w in zip(self.members, self.weights) if w > 0 and m.text_words]
        return min(windows, default=None)

    def __getattr__(self, name: str):
        """`chat` (writing synthetic examples) is the LLM member's, when it can write."""
        if name == "chat" and hasattr(self.members[1], "chat"):
            return self.members[1].chat
        raise AttributeError(name)

    def predict(self, texts: list[str]) -> list[tuple[np.ndarray, bool]]:
        """Pooled answers; a member with weight 0 is not asked at all (it would change nothing)."""
        active = [(m, w) for m, w in zip(self.members, self.weights) if w > 0]
        answers = [member.predict(texts) for member, _ in active]
        probs = pool([np.array([a[0] for a in ans]) for ans in answers], np.array([w for _, w in active]))
        valid = np.logical_and.reduce([[a[1] for a in ans] for ans in answers])
        return list(zip(probs, valid))
