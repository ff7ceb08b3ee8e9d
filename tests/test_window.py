"""The student's window is chosen from the task's texts, and batches of similar length pad less."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_task

from helpers.batching import SimilarLengths
from helpers.limits import MAX_WINDOW, MIN_WINDOW
from helpers.student import StudentConfig, gold_rows, train_student
from helpers.task import load_task
from helpers.window import choose_window, fit_to_task, fit_window

ROOT = Path(__file__).resolve().parents[1]
POST = ("honestly i dont know who else to tell, work has been a lot lately and my sleep is all over the place. "
        "i lie awake going over every conversation i had that day and then i am wrecked by the morning. ")


@pytest.mark.parametrize("lengths, window", [
    ([20] * 100, MIN_WINDOW),  # short texts: the window every task had before it was chosen
    ([20] * 85 + [200] * 15, 224),  # 90% hold in 200 pieces: the next step of 32
    ([20] * 50 + [600] * 50, MAX_WINDOW),  # long posts: as much as the embedder reads
    ([], MIN_WINDOW),
])
def test_the_window_is_the_shortest_step_that_holds_nine_texts_in_ten(lengths, window):
    assert choose_window(lengths) == window


def test_the_window_never_passes_the_models_position_table():
    assert choose_window([600] * 10, max_positions=192) == 192


def test_long_texts_get_a_long_window_and_batches_of_similar_length():
    mental_health = load_task(ROOT / "data-mental-health")
    config = fit_to_task(StudentConfig(), mental_health)
    assert (config.max_length, config.group_by_length) == (MAX_WINDOW, True)
    banking = fit_to_task(StudentConfig(), load_task(ROOT / "data-banking-routing"))
    assert (banking.max_length, banking.group_by_length) == (MIN_WINDOW, False)


def test_the_test_texts_do_not_choose_the_window(tmp_path):
    long = [(f"post {i}: {POST * 6}", ["refund", "delivery"][i % 2]) for i in range(6)]
    folder = make_task(tmp_path / "data-shop", test=long)
    assert fit_to_task(StudentConfig(), load_task(folder)).max_length == MIN_WINDOW
    folder = make_task(tmp_path / "data-shop-long", context=[f"post {i}: {POST * 6}" for i in range(20)])
    assert fit_to_task(StudentConfig(), load_task(folder)).max_length == MAX_WINDOW


def test_a_window_the_user_set_is_kept_and_one_the_model_cannot_read_is_refused():
    assert fit_window(StudentConfig(max_length=192), [POST * 6]).max_length == 192
    assert not fit_window(StudentConfig(max_length=192), [POST * 6]).group_by_length
    for bad in (4, 1000, -3):
        with pytest.raises(ValueError, match=rf"MAX_LENGTH \(--max-length\) is {bad}; minilm reads 16 to 512"):
            fit_window(StudentConfig(max_length=bad), ["short"])


def test_a_student_trained_with_the_defaults_saves_the_window_it_chose(tmp_path):
    """train_student chooses the window from its rows when nobody did; the tokenizer carries it,
    so evaluation, deploy and a plain pipeline cut a text where training did."""
    rows = gold_rows(pd.DataFrame({"text": [POST * 6, "refund please", POST * 5, "where is it"],
                                   "label": ["a", "b", "a", "b"]}), ["a", "b"])
    validation = pd.DataFrame({"text": ["money back", POST], "label": ["b", "a"]})
    student = train_student(rows, validation, ["a", "b"], StudentConfig(epochs=1).with_floor(2), tmp_path,
                            progress=False)
    assert student.config.max_length == MAX_WINDOW and student.config.group_by_length
    assert student.tokenizer.model_max_length == MAX_WINDOW


def test_similar_lengths_shuffles_every_row_once_into_batches_that_pad_less():
    rng = np.random.default_rng(0)
    lengths = rng.integers(10, 257, size=203).tolist()
    sampler = SimilarLengths(lengths, batch_size=8, seed=0)
    order = list(sampler)
    assert sorted(order) == list(range(203))
    batches = [order[i:i + 8] for i in range(0, 203, 8)]
    padded = sum(8 * max(lengths[i] for i in batch) for batch in batches[:-1])
    shuffled = rng.permutation(203).tolist()
    padded_random = sum(8 * max(lengths[i] for i in shuffled[i:i + 8]) for i in range(0, 200, 8))
    assert padded < 0.85 * padded_random
    assert len(batches[-1]) == 203 % 8  # the short batch comes last, so the loader cuts batches where meant


def test_similar_lengths_depends_only_on_seed_and_epoch():
    """A resumed run calls set_epoch with the epoch it resumes in and must see that epoch's order."""
    lengths = list(range(50))
    first, again = SimilarLengths(lengths, 4, seed=1), SimilarLengths(lengths, 4, seed=1)
    first.set_epoch(3)
    again.set_epoch(3)
    assert list(first) == list(again)
    again.set_epoch(4)
    assert list(first) != list(again)
    assert list(SimilarLengths(lengths, 4, seed=2)) != list(SimilarLengths(lengths, 4, seed=1))
