"""The benchmark's simulated teacher of known accuracy, and the student's warm starts (LP-FT)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import make_task

from helpers.task import load_task

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from simulated import SimulatedTeacher, is_right, simulated_answer  # noqa: E402

TRAIN = [("I want my money back", "refund"), ("please refund the order", "refund"),
         ("parcel has not arrived", "delivery"), ("where is my package", "delivery"),
         ("my card was charged twice", "billing"), ("why is there a fee on my bill", "billing")]
CLASSES = {"refund": "Money back.", "delivery": "Parcels.", "billing": "Charges and fees."}


def test_a_wrong_answer_goes_to_the_seed_classifiers_favourite_wrong_class():
    seed_probs = np.array([0.5, 0.2, 0.3])
    wrong = simulated_answer(truth=0, seed_probs=seed_probs, right=False, p=0.9)
    assert wrong.argmax() == 2 and wrong[2] == pytest.approx(0.9)
    assert wrong[0] == pytest.approx(0.1 * 0.5 / 0.7) and wrong.sum() == pytest.approx(1.0)
    right = simulated_answer(truth=1, seed_probs=seed_probs, right=True, p=0.8)
    assert right.argmax() == 1 and right[1] == pytest.approx(0.8)
    assert right[[0, 2]] == pytest.approx([0.2 * 0.5 / 0.8, 0.2 * 0.3 / 0.8])


def test_the_coin_is_right_about_p_of_the_time_and_the_same_for_the_same_text():
    texts = [f"message number {i}" for i in range(4000)]
    share = np.mean([is_right(t, 0.8, seed=0) for t in texts])
    assert share == pytest.approx(0.8, abs=0.02)
    assert [is_right(t, 0.8, 0) for t in texts[:50]] == [is_right(t, 0.8, 0) for t in texts[:50]]
    assert [is_right(t, 0.8, 0) for t in texts[:200]] != [is_right(t, 0.8, 1) for t in texts[:200]]


def test_simulated_teacher_answers_from_the_truth_and_errs_on_the_same_texts_after_refit(tmp_path):
    task = load_task(make_task(tmp_path / "data-shop", classes=CLASSES, train=TRAIN))
    texts = [f"refund request {i}" for i in range(40)]
    truth = {t: "refund" for t in texts}
    labels = SimulatedTeacher(task, truth, p=0.7).label(texts, progress=False)
    right = np.array(labels.labels) == "refund"
    assert right.tolist() == [is_right(t, 0.7, 0) for t in texts] and 0 < right.sum() < len(texts)
    assert np.allclose(labels.confidence, 0.7) and np.allclose(labels.probs.sum(1), 1.0)
    again = SimulatedTeacher(task, truth, p=0.7).without([0, 2]).label(texts, progress=False)
    assert (np.array(again.labels) == "refund").tolist() == right.tolist()


# ---- warm starts (helpers/warmstart.py) ---------------------------------------------------------

@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A fresh MiniLM student for the three-class task, and that task's seed rows as training rows."""
    from helpers.student import gold_rows, load_student

    task = load_task(make_task(tmp_path_factory.mktemp("t") / "data-shop", classes=CLASSES, train=TRAIN))
    tokenizer, model = load_student("minilm", task.classes)
    return tokenizer, model, gold_rows(task.train, task.classes)


def test_the_probe_head_predicts_what_the_probe_predicts(student):
    from helpers.student import predict_proba
    from helpers.warmstart import fit_probe_head

    tokenizer, model, rows = student
    accuracy = fit_probe_head(model, tokenizer, rows, max_length=32)
    predicted = predict_proba(model, tokenizer, rows["text"].tolist()).argmax(1)
    truth = np.array([int(np.argmax(t)) for t in rows["soft_targets"]])
    assert accuracy == pytest.approx(float((predicted == truth).mean()))
    assert accuracy == 1.0  # six separable rows: a fitted head gets them all, a random one rarely does


def test_aligning_the_pooler_turns_it_towards_the_mean_pooled_embedding(student):
    import torch

    from helpers.embeddings import embed
    from helpers.warmstart import align_pooler, pooled_features

    tokenizer, model, rows = student
    texts = rows["text"].tolist()

    def cosine() -> float:
        pooled = pooled_features(model, tokenizer, texts, 32)
        return float(torch.nn.functional.cosine_similarity(pooled, torch.from_numpy(embed(texts))).mean())

    before = cosine()
    lower = [p.clone() for p in model.bert.encoder.layer[0].parameters()]
    top = [p.clone() for p in model.bert.encoder.layer[-1].parameters()]
    align_pooler(model, tokenizer, texts, max_length=32, epochs=10, batch_size=4)
    assert cosine() > max(before + 0.2, 0.6)
    # only the top layer and the pooler learn: the lower layers' states were computed once
    assert all(torch.equal(a, b) for a, b in zip(lower, model.bert.encoder.layer[0].parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(top, model.bert.encoder.layer[-1].parameters()))


def test_an_unknown_warm_start_is_refused(student):
    from helpers.warmstart import warm_start

    tokenizer, model, rows = student
    with pytest.raises(ValueError, match="warm start must be one of"):
        warm_start(model, tokenizer, rows, "linear", 32, 0, 0)


def test_a_student_without_a_bert_pooler_gets_a_clear_error_not_an_attribute_error():
    from transformers import GPT2Config, GPT2ForSequenceClassification

    from helpers.warmstart import align_pooler, head_input

    decoder = GPT2ForSequenceClassification(GPT2Config(n_layer=1, n_embd=8, n_head=2, num_labels=3))
    with pytest.raises(ValueError, match="BERT student with a pooler.*GPT2ForSequenceClassification"):
        head_input(decoder, {})
    with pytest.raises(ValueError, match="warm_start='none'"):
        align_pooler(decoder, tokenizer=None, texts=["a text"], max_length=8)


def test_a_named_recipe_sets_its_fields_and_keeps_overrides():
    from helpers.recipes import DEFAULT_RECIPE, RECIPES, StudentConfig

    lpft = StudentConfig.recipe("lpft", seed=3, epochs=None)
    assert (lpft.warm_start, lpft.learning_rate, lpft.epochs, lpft.seed) == ("align+probe", 3e-5, 2, 3)
    assert StudentConfig.recipe("lpft", epochs=4).epochs == 4
    assert StudentConfig.recipe(DEFAULT_RECIPE) == StudentConfig()  # the dataclass holds the default recipe
    assert all(recipe.keys() == RECIPES["v3"].keys() for recipe in RECIPES.values())  # each sets every lever
    with pytest.raises(ValueError, match="recipe must be one of"):
        StudentConfig.recipe("v9")
    with pytest.raises(ValueError, match="unknown recipe setting"):
        StudentConfig.recipe("lpft", learning_rat=1e-3)


def test_settings_from_the_command_line_are_cast_to_the_recipes_field_types():
    from helpers.recipes import parse_settings

    assert parse_settings(["learning_rate=1e-4", "min_steps=150", "warm_start=align+probe"]) == {
        "learning_rate": 1e-4, "min_steps": 150, "warm_start": "align+probe"}
    for bad in ("learning_rat=1e-4", "min_steps", "min_steps="):
        with pytest.raises(ValueError, match="expected NAME=VALUE"):
            parse_settings([bad])
    with pytest.raises(ValueError):
        parse_settings(["min_steps=many"])


def test_levers_student_learns_every_seed_row_when_asked_as_the_delivered_refit_does(tmp_path):
    """`learn_held_out=true` screens the model distill delivers: the validation split's gold rows too."""
    from levers import training_rows

    from helpers.distill import Recipe
    from helpers.guard import split_validation
    from helpers.student import StudentConfig

    task = load_task(make_task(tmp_path / "data-shop", classes=CLASSES, train=TRAIN))
    train, validation = split_validation(task.train, 0)
    for every_row, expected in ((False, train), (True, task.train)):
        recipe = Recipe(task, StudentConfig(learn_held_out=every_row), tmp_path / "work", progress=False)
        rows = training_rows(task, {}, "none", recipe, train, validation)
        assert sorted(rows["text"]) == sorted(expected["text"]) and len(validation) > 0
