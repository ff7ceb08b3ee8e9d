"""The seed classifier on an embedder first trained on pairs of seed rows: SetFit as a teacher.

On injury the plain seed classifier (logistic regression on frozen MiniLM embeddings)
scores 0.714, and a student that learns its labels cannot get far past it; SetFit,
which first trains the same MiniLM on SetFit-style pairs of the seed rows
(helpers/contrastive.py) and then fits the same logistic regression, scored 0.833.
Spec ``seed?pairs=N``: N iterations of pairs per seed row (SetFit's default 20; 0 is
the plain seed classifier). It needs no LLM, so it stays offline, and it costs one
short body training per fit (1,680 pairs on injury's 42 rows).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from helpers.contrastive import train_contrastive
from helpers.embeddings import encode_with, load_encoder
from helpers.limits import EMBEDDER_TOKENS
from helpers.task import Task
from helpers.teachers.seed import SeedTeacher, class_indices

PAIRS_SEED = 0  # the pairs and dropout are drawn from this seed: one task's teacher is always the same


def contrasted_embedder(texts: list[str], labels: list[int], iterations: int):
    """A copy of the shipped sentence embedder, trained on pairs of the labelled texts; its tokenizer
    (shared with the original, which stays untouched) and what the training measured."""
    from helpers.models import MINILM
    from helpers.warmstart import mean_pooled

    tokenizer, shipped = load_encoder(MINILM)
    model = copy.deepcopy(shipped)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PAIRS_SEED)
        found = train_contrastive(model, tokenizer, texts, labels, EMBEDDER_TOKENS, iterations=iterations,
                                  seed=PAIRS_SEED, pool=mean_pooled)
    return tokenizer, model.eval(), found


class PairsTeacher(SeedTeacher):
    """Logistic regression on the embeddings of a MiniLM trained on pairs of the seed rows."""

    def __init__(self, task: Task, spec: str, iterations: int = 20):
        self.iterations = iterations
        self.tokenizer, self.encoder, self.contrastive = contrasted_embedder(
            task.train["text"].tolist(), class_indices(task), iterations)
        super().__init__(task, spec)

    def refit(self, task: Task, held_out: frozenset[int] = frozenset()) -> PairsTeacher:
        """Train a fresh embedder on `task`'s seed rows: a held-out row must not shape it either."""
        return type(self)(task, self.spec, self.iterations)

    def embed(self, texts: list[str]) -> np.ndarray:
        """Mean-pooled unit vectors from the trained embedder."""
        return encode_with(self.tokenizer, self.encoder, texts)
