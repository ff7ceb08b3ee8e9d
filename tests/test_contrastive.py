"""The SetFit-style contrastive warm start (helpers/contrastive.py), on the real MiniLM student."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_task

from helpers import warmstart
from helpers.contrastive import contrastive_pairs, train_contrastive
from helpers.embeddings import embed
from helpers.student import gold_rows, load_student
from helpers.task import load_task

TRAIN = [("I want my money back for the kettle", "refund"), ("please refund the order I returned", "refund"),
         ("refund me, the blender arrived broken", "refund"), ("money back for my late order please", "refund"),
         ("the parcel has not arrived after ten days", "delivery"),
         ("where is my package, tracking is stuck", "delivery"), ("the courier lost my box somewhere", "delivery"),
         ("delivery is two weeks late now", "delivery")]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_task(make_task(tmp_path_factory.mktemp("t") / "data-shop", train=TRAIN))


def test_pairs_give_each_row_a_same_class_and_an_other_class_partner_per_iteration():
    labels = [0, 0, 0, 1, 1, 2]  # class 2 has one row: no positive partner for it
    pairs = contrastive_pairs(labels, iterations=3, seed=0)
    same = np.array([labels[a] == labels[b] for a, b, _ in pairs])
    assert (same == (pairs[:, 2] == 1)).all() and (pairs[:, 0] != pairs[:, 1]).all()
    assert (pairs[:, 2] == 1).sum() == 3 * 5 and (pairs[:, 2] == 0).sum() == 3 * 6
    assert np.array_equal(pairs, contrastive_pairs(labels, 3, 0))
    assert not np.array_equal(pairs, contrastive_pairs(labels, 3, 1))


def unit(model, tokenizer, texts: list[str], pool=None) -> torch.Tensor:
    """Unit-length features of the texts: what the head reads, or what `pool` gives."""
    return torch.nn.functional.normalize(warmstart.pooled_features(model, tokenizer, texts, 32, pool=pool), dim=1)


def class_gap(model, tokenizer, texts: list[str], labels: list[int], pool=None) -> float:
    """Mean cosine of same-class pairs minus that of other-class pairs, on what the head reads."""
    return gap_of(unit(model, tokenizer, texts, pool).numpy(), labels)


def gap_of(features: np.ndarray, labels: list[int]) -> float:
    """`class_gap` of unit-length features."""
    cosine = features @ features.T
    same = np.equal.outer(labels, labels) & ~np.eye(len(labels), dtype=bool)
    return float(cosine[same].mean() - cosine[~np.equal.outer(labels, labels)].mean())


def test_contrastive_training_pulls_same_class_texts_together(task):
    tokenizer, model = load_student("minilm", task.classes)
    texts, labels = task.train["text"].tolist(), [task.classes.index(c) for c in task.train["label"]]
    before = class_gap(model, tokenizer, texts, labels)
    found = train_contrastive(model, tokenizer, texts, labels, 32, iterations=4, batch_size=8, learning_rate=1e-4)
    assert found["contrastive_pairs"] == 4 * 2 * len(texts)
    assert found["contrastive_loss_last"] < found["contrastive_loss_first"]
    assert class_gap(model, tokenizer, texts, labels) > before + 0.05


def test_the_contrastive_warm_start_pairs_gold_rows_only_and_once_per_fold(task, monkeypatch):
    """A teacher's rows may be wrong, so pairs come from gold rows; student-base and -tuned share them."""
    calls = []
    monkeypatch.setattr(warmstart, "REMEMBERED", {})
    monkeypatch.setattr(warmstart, "align_pooler", lambda *a, **k: 0.5)

    def train_contrastive(model, tokenizer, texts, labels, *args, **kwargs):
        calls.append((texts, labels))
        return {"contrastive_pairs": 1}

    monkeypatch.setattr(warmstart, "train_contrastive", train_contrastive)
    gold = gold_rows(task.train, task.classes)
    teacher = pd.DataFrame({"text": ["is my refund or my parcel late"], "soft_targets": [[0.5, 0.5]],
                            "sample_weight": 0.5, "temperature": 2.0, "source": "teacher"})
    for rows in (gold, pd.concat([gold, teacher], ignore_index=True)):
        tokenizer, model = load_student("minilm", task.classes)
        found = warmstart.warm_start(model, tokenizer, rows, "align+contrast+probe", 32, 1, 0)
        assert found["contrastive_pairs"] == 1 and "probe_train_accuracy" in found
    assert calls == [(gold["text"].tolist(), [task.classes.index(c) for c in task.train["label"]])]


def test_mean_pooling_gives_the_sentence_embedding(task):
    """SetFit's pooling on the student's body is the embedding all-MiniLM-L6-v2 was trained to give."""
    tokenizer, model = load_student("minilm", task.classes)
    texts = task.train["text"].tolist()
    mean = unit(model, tokenizer, texts, warmstart.mean_pooled).numpy()
    np.testing.assert_allclose((mean * embed(texts)).sum(axis=1), 1.0, atol=1e-4)


def test_setfit_order_contrasts_the_mean_embedding_then_aligns_the_pooler_to_it(task, monkeypatch):
    """The pooler ends up where the contrasted embedding points, not where the frozen one did."""
    monkeypatch.setattr(warmstart, "REMEMBERED", {})
    seen, align = [], warmstart.align_pooler
    monkeypatch.setattr(warmstart, "align_pooler", lambda *a, **k: seen.append(k["targets"]) or align(*a, **k))
    tokenizer, model = load_student("minilm", task.classes)
    gold = gold_rows(task.train, task.classes)
    texts, labels = gold["text"].tolist(), [task.classes.index(c) for c in task.train["label"]]
    before = class_gap(model, tokenizer, texts, labels, warmstart.mean_pooled)
    found = warmstart.warm_start(model, tokenizer, gold, "contrast+align+probe", 32, 1, 0, align_min_steps=60)
    assert found["contrastive_pairs"] == 20 * 2 * len(texts) and found["probe_train_accuracy"] == 1.0
    contrasted = torch.nn.functional.normalize(torch.from_numpy(seen[0]), dim=1).numpy()  # sorted texts
    order = sorted(set(texts))  # the alignment's text order
    gap = gap_of(contrasted, [labels[texts.index(t)] for t in order])
    assert gap > before + 0.05  # the pairs pulled the classes apart in the mean-pooled embedding
    pooler = unit(model, tokenizer, order).numpy()
    assert (pooler * contrasted).sum(axis=1).mean() > (pooler * embed(order)).sum(axis=1).mean() + 0.02
