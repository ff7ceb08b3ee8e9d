"""Warm starts for the student's head: linear probe, then fine-tune (LP-FT).

A fresh BertForSequenceClassification puts a random 77-way head behind the BERT
pooler (dense + tanh on the [CLS] token). all-MiniLM-L6-v2 was trained with mean
pooling, so neither its [CLS] state nor its pooler was ever asked to summarise a
sentence, and a random head's first updates tear the body apart before the head
points anywhere useful (Kumar et al. 2022, "Fine-tuning can distort pretrained
features"). Two levers, both keeping the exported architecture unchanged:

- ``probe``: fit logistic regression on the pooler outputs of the training rows
  and start the head from it;
- ``align+probe``: first train the body and pooler so that the pooler output
  points where the frozen mean-pooled sentence embedding points (cosine loss, no
  labels needed), then probe.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression

from helpers.embeddings import embed

WARM_STARTS = ("none", "probe", "align+probe")


def pooled_features(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64) -> torch.Tensor:
    """What the classification head reads: the pooler output (or [CLS] state) for each text."""
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            chunks.append(head_input(model, batch))
    return torch.cat(chunks)


def head_input(model, batch) -> torch.Tensor:
    """Pooler output of a BERT classifier, with gradients when called outside inference mode."""
    if not hasattr(model, "bert"):
        raise ValueError(f"warm starts need a BERT student with a pooler, not {type(model).__name__}")
    return model.bert(**batch).pooler_output


def fit_probe_head(model, tokenizer, rows: pd.DataFrame, max_length: int, c: float = 1.0) -> float:
    """Set the classifier to a logistic regression fit on the pooler outputs; returns its train accuracy.

    Teacher rows count by their weight, their label is the teacher's top class.
    """
    features = pooled_features(model, tokenizer, rows["text"].tolist(), max_length).numpy()
    labels = np.array([int(np.argmax(t)) for t in rows["soft_targets"]])
    probe = LogisticRegression(C=c, max_iter=1000)
    probe.fit(features, labels, sample_weight=rows["sample_weight"].to_numpy())
    weight = np.zeros((model.config.num_labels, features.shape[1]), np.float32)
    bias = np.full(model.config.num_labels, -10.0, np.float32)  # classes with no row stay unlikely
    weight[probe.classes_], bias[probe.classes_] = probe.coef_, probe.intercept_
    with torch.no_grad():
        model.classifier.weight.copy_(torch.from_numpy(weight))
        model.classifier.bias.copy_(torch.from_numpy(bias))
    return float(probe.score(features, labels))


def align_pooler(model, tokenizer, texts: list[str], max_length: int, steps: int, batch_size: int = 16,
                 learning_rate: float = 1e-4, seed: int = 0) -> float:
    """Train body + pooler so the pooler output has the frozen mean-pooled embedding's direction.

    Returns the mean cosine over the last 10 steps (1.0: the head sees what the
    sentence-embedding training shaped).
    """
    targets = torch.from_numpy(embed(texts))
    optimiser = torch.optim.AdamW(list(model.bert.parameters()), lr=learning_rate)
    order = np.random.default_rng(seed).permutation(np.resize(np.arange(len(texts)), steps * batch_size))
    model.train()
    cosines = []
    for step in range(steps):
        index = order[step * batch_size:(step + 1) * batch_size]
        batch = tokenizer([texts[i] for i in index], padding=True, truncation=True, max_length=max_length,
                          return_tensors="pt")
        cosine = torch.nn.functional.cosine_similarity(head_input(model, batch), targets[index]).mean()
        (1 - cosine).backward()
        optimiser.step()
        optimiser.zero_grad()
        cosines.append(float(cosine.detach()))
    model.eval()
    return float(np.mean(cosines[-10:]))


def warm_start(model, tokenizer, rows: pd.DataFrame, how: str, max_length: int, align_steps: int,
               seed: int) -> dict:
    """Apply the warm start `how` (one of WARM_STARTS) before fine-tuning; what it measured."""
    if how not in WARM_STARTS:
        raise ValueError(f"warm start must be one of {', '.join(WARM_STARTS)}, got {how!r}")
    found = {}
    if how == "align+probe":
        found["align_cosine"] = round(align_pooler(model, tokenizer, rows["text"].tolist(), max_length,
                                                   align_steps, seed=seed), 4)
    if how != "none":
        found["probe_train_accuracy"] = round(fit_probe_head(model, tokenizer, rows, max_length), 4)
    return found
