"""A SetFit-style contrastive stage before the head: pull same-class seed rows together.

On injury (7 classes, 6 seed rows each) SetFit scored 0.833 against our fine-tuned
student's 0.813: with so few rows, learning which texts belong together from pairs
(42 rows give 1,680 pairs) moves the body further than 42 labelled rows do. This
stage does what SetFit's body training does (Tunstall et al. 2022: for each row,
`iterations` same-class and as many other-class partners; the cosine of the two
embeddings regressed onto 1 or 0). Warm start ``align+contrast+probe`` compares pooler
outputs, which is what our classification head reads, after the pooler has been aligned
with the sentence embedding; ``contrast+align+probe`` compares mean-pooled embeddings, as
SetFit does, and aligns the pooler afterwards (helpers/warmstart.py). Either way the
exported model keeps its architecture, and only gold rows train it: a teacher's wrong
labels would pull the wrong texts together.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from transformers import get_linear_schedule_with_warmup


def contrastive_pairs(labels: list[int], iterations: int, seed: int) -> np.ndarray:
    """(left, right, same class) index triples: per row and iteration, one positive and one negative.

    A class with one row has no positive partner for it; a task with one class has no
    negatives. Both simply give fewer pairs, as in SetFit.
    """
    labels_ = np.asarray(labels)
    rng = np.random.default_rng(seed)
    pairs = []
    for _ in range(iterations):
        for i, label in enumerate(labels_):
            same = np.flatnonzero((labels_ == label) & (np.arange(len(labels_)) != i))
            other = np.flatnonzero(labels_ != label)
            if len(same):
                pairs.append((i, rng.choice(same), 1))
            if len(other):
                pairs.append((i, rng.choice(other), 0))
    pairs = np.array(pairs, dtype=np.int64).reshape(-1, 3)
    return pairs[rng.permutation(len(pairs))]


def train_contrastive(model, tokenizer, texts: list[str], labels: list[int], max_length: int,
                      iterations: int = 20, batch_size: int = 16, learning_rate: float = 2e-5,
                      seed: int = 0, pool: Callable | None = None) -> dict:
    """Train the whole body and pooler on `contrastive_pairs` of the texts; what it measured.

    `pool(model, batch)` gives the embeddings compared: by default the pooler output, which
    the head reads; ``warmstart.mean_pooled`` for SetFit's own mean pooling.

    SetFit's defaults (20 iterations, one epoch, batch 16, lr 2e-5, 10% warm-up), which
    its paper found robust from 8 rows per class. Returns the pairs' count and the mean
    loss of the first and last tenth of updates, so a record shows that it learned.
    """
    from helpers.warmstart import bert_of, head_input

    pool = pool or head_input
    pairs = contrastive_pairs(labels, iterations, seed)
    bert = bert_of(model)
    optimiser = torch.optim.AdamW(bert.parameters(), lr=learning_rate)
    steps = -(-len(pairs) // batch_size)
    schedule = get_linear_schedule_with_warmup(optimiser, max(1, steps // 10), max(1, steps))
    losses = []
    model.train()
    for start in range(0, len(pairs), batch_size):
        left, right, same = pairs[start:start + batch_size].T
        batch = tokenizer([texts[i] for i in left] + [texts[i] for i in right], padding=True, truncation=True,
                          max_length=max_length, return_tensors="pt").to(model.device)
        pooled = pool(model, batch)
        cosine = torch.nn.functional.cosine_similarity(pooled[:len(left)], pooled[len(left):])
        loss = torch.nn.functional.mse_loss(cosine, torch.as_tensor(same, dtype=cosine.dtype, device=cosine.device))
        loss.backward()
        optimiser.step()
        schedule.step()
        optimiser.zero_grad()
        losses.append(float(loss.detach()))
    model.eval()
    tenth = max(1, len(losses) // 10)
    return {"contrastive_pairs": len(pairs), "contrastive_loss_first": round(float(np.mean(losses[:tenth])), 4),
            "contrastive_loss_last": round(float(np.mean(losses[-tenth:])), 4)} if losses else {"contrastive_pairs": 0}
