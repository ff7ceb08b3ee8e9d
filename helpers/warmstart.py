"""Warm starts for the student's head: linear probe, then fine-tune (LP-FT).

A fresh BertForSequenceClassification puts a random 77-way head behind the BERT
pooler (dense + tanh on the [CLS] token). all-MiniLM-L6-v2 was trained with mean
pooling, so neither its [CLS] state nor its pooler was ever asked to summarise a
sentence, and a random head's first updates tear the body apart before the head
points anywhere useful (Kumar et al. 2022, "Fine-tuning can distort pretrained
features"). The levers, all keeping the exported architecture unchanged:

- ``probe``: fit logistic regression on the pooler outputs of the training rows
  and start the head from it;
- ``align``: only that alignment, the head left random (for `v3`'s long, fast
  schedule, whose random head beat a probe's on long forum posts);
- ``align+probe``: first train the top layer and the pooler so that the pooler
  output points where the frozen mean-pooled sentence embedding points (cosine
  loss, no labels needed), then probe;
- ``align+contrast+probe``: align, then train the whole body on SetFit-style
  pairs of gold rows (helpers/contrastive.py), then probe;
- ``contrast+align+probe``: SetFit's own order and pooling: the pairs train the
  body's mean-pooled embedding (as all-MiniLM-L6-v2 was trained), then the pooler
  is aligned with that contrasted embedding, then probe.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable

import numpy as np
import pandas as pd
import torch
from sklearn.linear_model import LogisticRegression

from helpers.contrastive import train_contrastive
from helpers.embeddings import embed

WARM_STARTS = ("none", "probe", "align", "align+probe", "align+contrast+probe", "contrast+align+probe")


def pooled_features(model, tokenizer, texts: list[str], max_length: int, batch_size: int = 64,
                    pool: Callable | None = None) -> torch.Tensor:
    """One vector per text: by default what the classification head reads (the pooler output)."""
    pool = pool or head_input
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt")
            chunks.append(pool(model, batch.to(model.device)))
    return torch.cat(chunks)


def bert_of(model):
    """The BERT body of a classifier, or the body itself; warm starts read and train its pooler,
    which decoders lack."""
    bert = getattr(model, "bert", model if type(model).__name__ == "BertModel" else None)
    if bert is None or getattr(bert, "pooler", None) is None:
        raise ValueError(f"warm starts need a BERT student with a pooler, not {type(model).__name__}: "
                         "use warm_start='none' (recipe v3) for this backbone")
    return bert


def head_input(model, batch) -> torch.Tensor:
    """Pooler output of a BERT classifier, with gradients when called outside inference mode."""
    return bert_of(model)(**batch).pooler_output


def mean_pooled(model, batch) -> torch.Tensor:
    """The mean of the body's last states over real tokens: how all-MiniLM-L6-v2 embeds a text."""
    states = bert_of(model)(**batch).last_hidden_state
    mask = batch["attention_mask"].unsqueeze(-1).to(states.dtype)
    return (states * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1)


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


def align_pooler(model, tokenizer, texts: list[str], max_length: int, epochs: int = 3, batch_size: int = 32,
                 learning_rate: float = 1e-3, seed: int = 0, min_steps: int = 0,
                 targets: np.ndarray | None = None) -> float:
    """Train the top layer + pooler so the pooler output has the frozen mean-pooled embedding's direction.

    Only the top layer and the pooler learn: the lower layers' states are computed once
    and reused every epoch, so one epoch costs about a forward pass. On BANKING77 (2,116
    texts, dev split) three epochs took 20 s and reached a held-out cosine of 0.92; a
    probe on the aligned pooler scored 0.88 against 0.85 before alignment and 0.90 on the
    mean-pooled embedding itself. Training the whole body (200 steps of 16 texts) took
    8-10 minutes and reached 0.81. A small task has few texts: more epochs make up at
    least `min_steps` updates. `targets` replaces the frozen embedding (one row per text).
    Returns the mean cosine over the last epoch.
    """
    bert = bert_of(model)
    targets = torch.from_numpy(embed(texts) if targets is None else targets).to(model.device)
    batches = lower_states(model, tokenizer, texts, max_length, batch_size)
    top = bert.encoder.layer[-1]
    optimiser = torch.optim.AdamW(list(top.parameters()) + list(bert.pooler.parameters()), lr=learning_rate)
    rng = np.random.default_rng(seed)
    model.train()
    for _ in range(max(epochs, -(-min_steps // max(1, len(batches))))):
        cosines = []
        for i in rng.permutation(len(batches)):
            index, states, mask = batches[i]
            pooled = bert.pooler(top(states, mask))
            cosine = torch.nn.functional.cosine_similarity(pooled, targets[index]).mean()
            (1 - cosine).backward()
            optimiser.step()
            optimiser.zero_grad()
            cosines.append(float(cosine.detach()))
    model.eval()
    return float(np.mean(cosines)) if batches else 0.0


def lower_states(model, tokenizer, texts: list[str], max_length: int,
                 batch_size: int) -> list[tuple[np.ndarray, torch.Tensor, torch.Tensor]]:
    """(row indices, input of the top layer, its attention mask) per batch of similar lengths.

    Sorting by length keeps padding, and so the cost of every later epoch, small.
    """
    from transformers.masking_utils import create_bidirectional_mask

    order = np.argsort([len(t) for t in texts], kind="stable")
    batches = []
    with torch.no_grad():
        for start in range(0, len(order), batch_size):
            index = order[start:start + batch_size]
            batch = tokenizer([texts[i] for i in index], padding=True, truncation=True, max_length=max_length,
                              return_tensors="pt").to(model.device)
            states = bert_of(model)(**batch, output_hidden_states=True).hidden_states[-2]
            mask = create_bidirectional_mask(config=model.config, inputs_embeds=states,
                                             attention_mask=batch["attention_mask"])
            batches.append((index, states, mask))
    return batches


REMEMBERED: dict[str, tuple[list[dict], object]] = {}  # this process's warm-start weights, newest last


def remembered(key: str, parts: list[torch.nn.Module], compute: Callable[[], object]) -> object:
    """Run `compute` (which trains `parts`) once per key; later, load the weights it gave.

    A run trains student-base, student-tuned and its refit on one fold's seed rows and the
    same corpus: the texts, and so the warm-started weights, are the same each time.
    """
    if key not in REMEMBERED:
        found = compute()
        REMEMBERED[key] = ([{k: v.detach().clone() for k, v in part.state_dict().items()} for part in parts], found)
        while len(REMEMBERED) > 3:  # up to a whole body each: keep the current fold's
            REMEMBERED.pop(next(iter(REMEMBERED)))
    states, found = REMEMBERED[key]
    for part, state in zip(parts, states):
        part.load_state_dict(state)
    return found


def texts_key(model, max_length: int, texts: list[str], *settings) -> str:
    """What decides a warm start's weights: backbone, window, texts (hashed) and settings."""
    digest = hashlib.sha256("\0".join(texts).encode()).hexdigest()
    return "|".join(map(str, [model.config._name_or_path, max_length, *settings, digest]))


def aligned_once(model, tokenizer, texts: list[str], max_length: int, epochs: int, seed: int,
                 min_steps: int, after: str = "") -> float:
    """`align_pooler`, or the weights it gave for the same texts and settings earlier in this process.

    `after` names a contrastive stage already applied (its key): then the pooler is aligned
    with the body's own mean-pooled embedding, which that stage trained, not the frozen one.
    """
    bert = bert_of(model)

    def align() -> float:
        targets = pooled_features(model, tokenizer, texts, max_length, pool=mean_pooled).cpu().numpy() \
            if after else None
        return align_pooler(model, tokenizer, texts, max_length, epochs, seed=seed, min_steps=min_steps,
                            targets=targets)

    return remembered(texts_key(model, max_length, texts, "align", epochs, seed, min_steps, after),
                      [bert.encoder.layer[-1], bert.pooler], align)


def contrasted_once(model, tokenizer, rows: pd.DataFrame, max_length: int, seed: int,
                    pooling: str = "pooler") -> tuple[dict, str]:
    """`train_contrastive` on the gold rows, or the body it gave them earlier in this process;
    what it measured, and its key.

    Student-base and student-tuned of a fold share their gold rows, so they share this stage.
    """
    gold = rows[rows["source"] == "gold"] if "source" in rows else rows
    texts, labels = gold["text"].tolist(), [int(np.argmax(t)) for t in gold["soft_targets"]]
    key = texts_key(model, max_length, texts + [str(labels)], "contrast", seed, pooling)
    pool = mean_pooled if pooling == "mean" else head_input
    return remembered(key, [bert_of(model)], lambda: train_contrastive(model, tokenizer, texts, labels, max_length,
                                                                       seed=seed, pool=pool)), key


def warm_start(model, tokenizer, rows: pd.DataFrame, how: str, max_length: int, align_epochs: int,
               seed: int, align_texts: list[str] = (), align_min_steps: int = 0) -> dict:
    """Apply the warm start `how` (one of WARM_STARTS) before fine-tuning; what it measured.

    The alignment needs no labels, so it reads the training texts and `align_texts`
    (the unlabelled corpus): on a task of 40 seed rows, the rows alone were 2 batches
    an epoch, too few to move the pooler.
    """
    if how not in WARM_STARTS:
        raise ValueError(f"warm start must be one of {', '.join(WARM_STARTS)}, got {how!r}")
    found, after, steps = {}, "", how.split("+")
    if how == "contrast+align+probe":
        measured, after = contrasted_once(model, tokenizer, rows, max_length, seed, pooling="mean")
        found.update(measured)
    if "align" in steps:
        texts = sorted(set(rows["text"].tolist() + list(align_texts)))
        found["align_cosine"] = round(aligned_once(model, tokenizer, texts, max_length, align_epochs, seed,
                                                   align_min_steps, after), 4)
        found["align_texts"] = len(texts)
    if how == "align+contrast+probe":
        found.update(contrasted_once(model, tokenizer, rows, max_length, seed)[0])
    if "probe" in steps:
        found["probe_train_accuracy"] = round(fit_probe_head(model, tokenizer, rows, max_length), 4)
    return found
