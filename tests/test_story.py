"""What the notebooks tell a learner: sentences read from real results, real files."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from conftest import make_task

from helpers import explain, provenance, retrain
from helpers.deploy import CsvError
from helpers.evaluate import TeacherReport, evaluate_predictions
from helpers.student import StudentConfig
from helpers.task import load_task
from helpers.window import fit_to_task

CLASSES = ["refund", "delivery"]
GOLD = ["refund"] * 5 + ["delivery"] * 5


def scored(name: str, wrong: int, start: int = 0):
    """An evaluation of 10 rows with `wrong` of them flipped from row `start` on."""
    pred = list(GOLD)
    for i in range(start, start + wrong):
        pred[i] = CLASSES[1 - CLASSES.index(pred[i])]
    return evaluate_predictions(name, GOLD, pred, CLASSES, seconds_per_text=0.01 * (wrong + 1))


class Weighted:
    """The one attribute of a committee these sentences read."""

    def __init__(self, weights, spec="local:smollm2-135m+seed"):
        self.weights, self.spec = np.array(weights), spec


def test_committee_says_in_plain_words_when_the_llm_got_nothing():
    assert "got weight 0" in explain.committee_weights(Weighted([1.0, 0.0]))
    assert "got weight 0" not in explain.committee_weights(Weighted([0.7, 0.3]))
    assert "LLM 0.3" in explain.committee_weights(Weighted([0.7, 0.3]))


def test_teacher_equal_to_the_seed_classifier_is_said_not_hidden():
    same = TeacherReport(scored("teacher", 2), scored("seed-only classifier", 2), None)
    worse = TeacherReport(scored("teacher", 4), scored("seed-only classifier", 2), None)
    better = TeacherReport(scored("teacher", 1), scored("seed-only classifier", 2), None)
    assert "exactly as accurate" in explain.teacher_verdict(same)
    assert explain.teacher_verdict(worse).startswith("WARNING:")
    assert "+10.0%" in explain.teacher_verdict(better)


def test_interpretation_reads_winner_margin_overlap_and_worse_classes():
    evaluations = [scored("teacher", 3), scored("student-base", 4, start=0), scored("student-tuned", 1, start=5)]
    text = explain.interpret(evaluations, "student-tuned", 10)
    assert "Best on test: student-tuned with 90.0% accuracy (9 of 10 rows)" in text
    assert "vs student-base: +30.0% (+3 rows)" in text
    assert "delivery -0.20" in text  # tuned misses a delivery row that base found
    clear = explain.interpret([scored("student-base", 5), scored("student-tuned", 0)], "student-tuned", 10)
    assert "do not overlap" in clear


def test_payoff_compares_sizes_and_speeds():
    text = explain.payoff(scored("teacher", 3), scored("student-tuned", 0), 157_000_000, 22_700_000)
    assert "6.9x smaller" in text and "4.0x the student's" in text
    alone = explain.payoff(scored("teacher", 3), scored("student-base", 0), None, 22_700_000)
    assert "no LLM is asked" in alone and "the student's" not in alone  # no speed-up claimed for the seed


def test_payoff_times_the_teacher_afresh_not_from_its_cached_labelling_pass():
    teacher = scored("teacher", 3)  # its labelling pass: 40 ms per text, or far less from a cache
    teacher.speed = {"p50_ms": 180.0, "texts_per_second": 10.0, "batch": 4}
    text = explain.payoff(teacher, scored("student-tuned", 0), 157_000_000, 22_700_000)
    assert "100.0 ms per test text in a batch of 4, timed afresh (10.0x the student's)" in text
    assert "40.0 ms" not in text


def test_training_plan_explains_epochs_beyond_epochs():
    from helpers.student import StudentConfig

    line = explain.training_plan("base", StudentConfig.recipe("v3", epochs=5), 16, 4)
    assert line.startswith("Training student-base: 16 training rows, 75 epochs; at least 150 steps")
    assert "Score =" in line and "probe" not in line
    capped = explain.training_plan("tuned", StudentConfig.recipe("v3", epochs=5), 2000, 4)
    assert "steps so" not in capped
    assert "2000 training rows, 1 epoch of 250 steps, not 5: a cap of 320 steps" in capped
    assert "not 5" not in explain.training_plan("tuned", StudentConfig.recipe("v3", epochs=5), 400, 4)
    warm = explain.training_plan("base", StudentConfig.recipe("lpft"), 16, 4)
    assert warm.startswith("Training student-base: 16 training rows, 2 epochs. First the pooler is aligned")


def model_with_logs(root: Path, task: str, folder: str | None = None) -> Path:
    model = root / "model"
    model.mkdir(parents=True)
    logs = {"task": task} | ({"task_folder": folder} if folder else {})
    (model / "training-logs.json").write_text(json.dumps(logs))
    return model


def test_deployment_defaults_come_from_the_models_own_logs(tmp_path, task_dir):
    model = model_with_logs(tmp_path, "shop", task_dir.name)
    assert provenance.default_tar(None, model) == tmp_path / "shop-model.tar"
    assert provenance.default_tar("other.tar", model) == Path("other.tar")  # what the user asked wins
    assert provenance.default_test_csv(None, model) == (task_dir / "test.csv").resolve()
    assert provenance.first_text(provenance.default_test_csv(None, model)) == "can I get a refund"


def test_the_int8_export_reads_the_tasks_unlabelled_texts_to_calibrate_on(tmp_path, task_dir):
    model = model_with_logs(tmp_path, "shop", task_dir.name)
    context = [line.strip('"') for line in (task_dir / "unstructured.csv").read_text().splitlines()[1:]]
    assert provenance.unlabelled_texts(model, 2) == context[:2]
    assert provenance.unlabelled_texts(model, 10**6) == context
    (task_dir / "unstructured.csv").write_text("label\nrefund\n")  # no column of texts: nothing to calibrate on
    assert provenance.unlabelled_texts(model, 2) is None
    (task_dir / "unstructured.csv").unlink()
    assert provenance.unlabelled_texts(model, 2) is None
    assert provenance.unlabelled_texts(tmp_path / "nowhere", 2) is None


def test_deployment_defaults_without_logs_or_task_folder(tmp_path):
    assert provenance.default_tar(None, tmp_path / "model") is None
    model = model_with_logs(tmp_path, "injury")  # an older model: no task_folder, data-injury assumed
    assert provenance.trained_task(model)["task_folder"] == "data-injury"
    assert provenance.default_test_csv(None, model) is None  # not there: the notebook says to set TEST_CSV
    assert provenance.first_text(None) is None


def test_my_labels_live_beside_the_task_and_are_never_overwritten(task_dir):
    task = load_task(task_dir)
    path = retrain.labels_path(task)
    assert path.parent == task_dir.resolve().parent and path.name == f"{task_dir.name}-my-labels.csv"
    assert retrain.write_template(path, ["hello there"])
    path.write_text("question,answer\nhello there,Refund\npackage stuck in transit,\n")
    assert not retrain.write_template(path, ["something else"])
    labels = retrain.read_labels(path, task)
    assert labels[["text", "label"]].values.tolist() == [["hello there", "refund"]]  # empty answer skipped


def test_a_label_that_is_no_class_names_its_row(task_dir, tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text("question,answer\nhello there,refund\nwhat a day,weather\n")
    with pytest.raises(CsvError, match=r"row 3: 'weather'"):
        retrain.read_labels(path, load_task(task_dir))


def test_learner_rows_join_the_seed_rows_in_memory_only(task_dir):
    task = load_task(task_dir)
    files = {p.name: p.read_bytes() for p in task_dir.iterdir()}
    labels = pd.DataFrame({"text": ["hello there", "can I get a refund"], "label": ["delivery", "refund"],
                           "row": [2, 3]})
    better = retrain.with_labels(task, labels)
    assert len(better.train) == len(task.train) + 1  # the test text is not trained on
    assert "hello there" in set(better.train["text"]) and "hello there" not in set(better.unstructured["text"])
    assert {p.name: p.read_bytes() for p in task_dir.iterdir()} == files


def test_seed_teacher_is_named_the_baseline_not_compared_with_itself():
    class Seed:
        spec = "seed"

    assert "seed-only classifier itself" in explain.committee_weights(Seed())
    same = TeacherReport(scored("teacher (seed)", 2), scored("seed-only classifier", 2), None)
    assert "by construction" in explain.teacher_verdict(same)


def test_reading_window_counts_the_texts_the_student_cuts(tmp_path):
    long_text = "the parcel " * 200  # ~400 word pieces, far past the window
    folder = make_task(tmp_path / "data-shop", train=[("refund please", "refund"), ("where is it", "delivery"),
                                        (long_text, "delivery"), ("money back", "refund")],
                       context=[f"a short unlabelled note, number {i}" for i in range(20)])  # 1 long text in 24
    task = load_task(folder)
    text = explain.reading_window(task, fit_to_task(StudentConfig(), task))
    assert "first 128 word pieces" in text and "chosen from this task's texts" in text
    train_line = next(line for line in text.splitlines() if line.strip().startswith("train"))
    assert "25% are cut" in train_line and "4 texts" in train_line
    mine = explain.reading_window(task, fit_to_task(StudentConfig(max_length=512), task))
    assert "0% are cut" in mine and "set by you (MAX_LENGTH); chosen from this task's texts it would be 128" in mine
