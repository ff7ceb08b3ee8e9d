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

import numpy as np
import torch

from helpers.contrastive import train_contrastive
from helpers.embeddings import encode_with
from helpers.limits import EMBEDDER_TOKENS
from helpers.task import Task
from helpers.teachers.seed import SeedTeacher

PAIRS_SEED = 0  # the pairs and dropout are drawn from this seed: one task's teacher is always the same


def contrasted_embedder(texts: list[str], labels: list[int], iterations: int):
    """A fresh copy of the shipped sentence embedder, trained on pairs of the labelled texts."""
    from transformers import AutoModel, AutoTokenizer

    from helpers.models import MINILM, resolve_backbone, set_threads
    from helpers.warmstart import mean_pooled

    set_threads()
    path, kwargs = resolve_backbone(MINILM)
    tokenizer, model = AutoTokenizer.from_pretrained(path, **kwargs), AutoModel.from_pretrained(path, **kwargs)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(PAIRS_SEED)
        found = train_contrastive(model, tokenizer, texts, labels, EMBEDDER_TOKENS, iterations=iterations,
                                  seed=PAIRS_SEED, pool=mean_pooled)
    return tokenizer, model.eval(), found


class PairsTeacher(SeedTeacher):
    """Logistic regression on the embeddings of a MiniLM trained on pairs of the seed rows."""

    def __init__(self, task: Task, spec: str, iterations: int = 20):
        index = {c: i for i, c in enumerate(task.classes)}
        self.iterations = iterations
        self.tokenizer, self.encoder, self.contrastive = contrasted_embedder(
            task.train["text"].tolist(), [index[label] for label in task.train["label"]], iterations)
        super().__init__(task, spec)

    def refit(self, task: Task, held_out: frozenset[int] = frozenset()) -> PairsTeacher:
        """Train a fresh embedder on `task`'s seed rows: a held-out row must not shape it either."""
        return type(self)(task, self.spec, self.iterations)

    def embed(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        """Mean-pooled unit vectors from the trained embedder, longest texts first to pad little."""
        order = np.argsort([-len(t) for t in texts], kind="stable")
        vectors = np.zeros((len(texts), self.encoder.config.hidden_size), np.float32)
        for start in range(0, len(texts), batch_size):
            chunk = order[start:start + batch_size]
            vectors[chunk] = encode_with(self.tokenizer, self.encoder, [texts[i] for i in chunk])
        return vectors
