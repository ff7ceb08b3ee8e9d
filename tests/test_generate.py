"""Synthetic examples: parsing, near-copy removal, label-back filtering."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import make_task

from helpers.generate import drop_near_copies, parse_lines, synthesize, write_examples
from helpers.task import load_task
from helpers.teachers import make_teacher
from helpers.teachers.seed import SeedTeacher

TRAIN = [("I want my money back", "refund"), ("please refund the order", "refund"),
         ("refund me for the broken kettle", "refund"), ("parcel has not arrived", "delivery"),
         ("where is my package", "delivery"), ("courier lost my box", "delivery")]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_task(make_task(tmp_path_factory.mktemp("g") / "data-shop", train=TRAIN))


class ScriptedWriter(SeedTeacher):
    """The seed classifier as judge, with fixed replies as the 'writer' (the LLM's part)."""

    replies = {"refund": "1. Please give me my money back for the blender\n- where is my package\n"
                         "\"I would like a refund for the late shoes\"\nok",
               "delivery": "* The van never came with my order today\n* refund me now for the broken lamp"}

    def chat(self, messages, **_):
        label = "refund" if "'refund'" in messages[-1]["content"] else "delivery"
        return self.replies[label]


def test_reply_lines_are_cleaned():
    assert parse_lines('1. "First text here"\n\n- second text here\nok\n* third one now') == \
        ["First text here", "second text here", "third one now"]


def test_near_copies_of_seed_and_test_rows_are_dropped(task):
    import pandas as pd

    frame = pd.DataFrame({"text": ["Where is my package?", "WHERE is my  package", "my blender smells burnt"],
                          "intended": ["delivery"] * 3})
    kept = drop_near_copies(frame, task.train["text"].tolist())
    assert kept["text"].tolist() == ["my blender smells burnt"]


def test_synthesize_keeps_only_fresh_texts_the_teacher_labels_back(task):
    rows, labels, stats = synthesize(task, ScriptedWriter(task), per_class=5)
    # "ok" is too short to count; "where is my package" is a seed row; the lamp is written as delivery
    # but the judge labels it refund, so it is dropped
    assert stats == {"written": 5, "near_copies": 1, "label_back_failed": 1, "kept": 3}
    assert rows["text"].tolist() == ["Please give me my money back for the blender",
                                     "I would like a refund for the late shoes",
                                     "The van never came with my order today"]
    assert labels.labels == rows["intended"].tolist() == ["refund", "refund", "delivery"]


@pytest.mark.slow
def test_local_llm_can_write_examples(task, monkeypatch):
    teacher = make_teacher("local:smollm2-135m", task)
    written = write_examples(task, teacher, per_class=3)
    assert len(written) >= 1, "SmolLM2 wrote no usable line"
    assert written["text"].is_unique and all(len(t.split()) >= 3 for t in written["text"])
    assert not any(t.startswith(("Answer with", "Texts from")) for t in written["text"])  # no prompt echo
    # synthesize would write the very same lines (same seed, same prompts): hand it these, not a minute more
    monkeypatch.setattr("helpers.generate.write_examples", lambda *args, **kwargs: written)
    rows, labels, stats = synthesize(task, teacher, per_class=3)
    assert stats["written"] == len(written) and set(rows["text"]) <= set(written["text"])
    assert len(rows) == stats["kept"]
    np.testing.assert_array_equal(labels.probs.argmax(axis=1),
                                  [task.classes.index(c) for c in rows["intended"]])  # kept = labelled back
