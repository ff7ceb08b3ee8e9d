"""The `seed?pairs=N` teacher: the seed classifier on a MiniLM trained on pairs of seed rows (SetFit's recipe)."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_task
from test_contrastive import TRAIN

from helpers import explain
from helpers.task import load_task
from helpers.teachers import make_teacher
from helpers.teachers.pairs import PairsTeacher
from helpers.teachers.seed import SeedTeacher


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    return load_task(make_task(tmp_path_factory.mktemp("t") / "data-shop", train=TRAIN))


def test_pairs_make_a_better_teacher_on_unseen_texts():
    """On injury's real test texts, which the pairs never saw, two rounds of pairs (168) already
    label more rows right than the plain seed classifier (0.76 against 0.71 here)."""
    task = load_task("data-injury")
    texts, gold = task.test["text"].tolist(), task.test["label"].to_numpy()
    teacher = make_teacher("seed?pairs=2", task)
    assert isinstance(teacher, PairsTeacher) and teacher.contrastive["contrastive_pairs"] == 2 * 2 * len(task.train)
    assert teacher.contrastive["contrastive_loss_last"] < teacher.contrastive["contrastive_loss_first"]
    right = (np.array(teacher.label(texts, progress=False).labels) == gold).sum()
    plain = (np.array(make_teacher("seed", task).label(texts, progress=False).labels) == gold).sum()
    assert right >= plain + 2, (right, plain)
    assert np.allclose(np.linalg.norm(teacher.embed(texts[:3]), axis=1), 1, atol=1e-5)


def test_held_out_rows_shape_neither_the_classifier_nor_the_embedder(shop):
    teacher = make_teacher("seed?pairs=2", shop)
    dropped = [shop.train.index[0], shop.train.index[-1]]
    reduced = teacher.without(dropped)
    again = reduced.refit(reduced.task)
    texts = shop.train["text"].tolist()
    assert len(reduced.task.train) == len(TRAIN) - 2 and reduced.id != teacher.id
    assert not np.allclose(reduced.embed(texts), teacher.embed(texts), atol=1e-4)  # a new embedder
    assert np.array_equal(again.embed(texts), reduced.embed(texts))  # the same rows give the same teacher
    assert len(teacher.task.train) == len(TRAIN)
    assert "first trained on 32 pairs of seed rows" in explain.committee_weights(teacher)  # 8 rows x 2 x 2


def test_pairs_spec_parses_and_explains_mistakes(shop):
    assert type(make_teacher("seed?pairs=0", shop)) is SeedTeacher
    with pytest.raises(ValueError, match="whole number"):
        make_teacher("seed?pairs=twenty", shop)
    with pytest.raises(ValueError, match="only options are \\?pairs=N"):
        make_teacher("seed?retrieve=4", shop)
