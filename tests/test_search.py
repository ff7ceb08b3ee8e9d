"""The recipe search (helpers/search.py): trial 0 replays the given recipe, the best trial on held-out
seed rows wins (the given one on a tie), the teacher labels once, the test set is never read, and
distill, the CLI and training-logs carry it through."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
from conftest import make_task

from helpers import distill as distill_module
from helpers import guard as guard_module
from helpers.distill import Recipe, distill, teacher_rows
from helpers.guard import split_validation
from helpers.search import at_temperature, search_recipe, searched, trials_table
from helpers.student import StudentConfig, TrainedStudent
from helpers.task import load_task
from helpers.teachers.base import TeacherLabels
from helpers.teachers.seed import SeedTeacher

# A window set by hand, which distill keeps as given, so configs compare equal before and after it
TINY = StudentConfig(epochs=1, min_steps=2, min_examples_per_class=0, batch_size=4, patience=2, max_length=128)
CLASSES = {"refund": "Wants money back.", "delivery": "Asks where a parcel is.", "account": "Login or password."}
TRAIN = [("I want my money back", "refund"), ("please refund the order", "refund"),
         ("refund me for the broken kettle", "refund"), ("money back for my late order", "refund"),
         ("parcel has not arrived", "delivery"), ("where is my package", "delivery"),
         ("courier lost my box", "delivery"), ("delivery is two weeks late", "delivery"),
         ("I cannot log in", "account"), ("reset my password please", "account"),
         ("my account is locked", "account"), ("change the email on my account", "account")]
TEST = [("can I get a refund", "refund"), ("my order is late", "delivery"), ("forgot my password", "account")]
CONTEXT = ["package stuck in transit", "refund still not processed", "password link expired",
           "the box never came", "return the shoes for cash", "login page shows an error", "can I get a refund"]


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_task(make_task(tmp_path_factory.mktemp("t") / "data-shop3", classes=CLASSES, train=TRAIN,
                               test=TEST, context=CONTEXT))


class Recording(SeedTeacher):
    """A seed teacher that notes what each rebuilt copy labelled and which seed rows it learnt from."""

    calls: list[tuple[list[str], set[str]]] = []

    def label(self, texts, *args, **kwargs):
        Recording.calls.append((list(texts), set(self.task.train["text"])))
        return super().label(texts, *args, **kwargs)


class Fake:
    """A student that answers `predicted` (class indices, one per held-out row) without training."""

    train_seconds = 0.0

    def __init__(self, predicted: list[int], n_classes: int, config: StudentConfig):
        self.probs, self.config = np.eye(n_classes)[predicted], config

    def predict_proba(self, texts):
        assert len(texts) == len(self.probs)
        return self.probs


def right(truth):
    return list(truth)


def wrong(truth):
    return [(t + 1) % 3 for t in truth]


def first_right(truth):  # 1 of 3 right
    return [truth[0]] + wrong(truth[1:])


def all_first(truth):  # 1 of 3 right, and one class predicted for every row: macro-F1 1/6
    return [truth[0]] * len(truth)


def first_right_swapped(truth):  # 1 of 3 right, the others swapped: macro-F1 1/3
    return [truth[0], truth[2], truth[1]]


@pytest.fixture
def scripted(task, monkeypatch):
    """Recipe.train replaced by `Fake` students: `plan(name)` says what each one predicts; the
    (name, config) of every training is recorded."""
    trained = []

    def use(plan):
        def train(self, rows, validation, name):
            trained.append((name, self.config))
            truth = [task.classes.index(label) for label in validation["label"]]
            return Fake(plan(name)(truth), len(task.classes), self.config)
        monkeypatch.setattr(Recipe, "train", train)
        return trained
    return use


def search(task, config, tmp_path, trials=3, fold=1):
    recipe = Recipe(task, config, tmp_path, progress=False)
    return search_recipe(recipe, Recording(task), CONTEXT[:-1], trials, fold)


@pytest.mark.parametrize(("plans", "chosen"), [
    ([first_right, right, right], 1),  # better than the given recipe: the first of the best
    ([right, right, wrong], 0),  # a tie with the given recipe keeps it
    ([right, wrong, first_right], 0),
    ([wrong, wrong, first_right], 2),
    ([all_first, first_right_swapped, all_first], 1),  # same accuracy: macro-F1 decides, as in the guard
])
def test_the_search_starts_from_the_given_recipe_and_keeps_the_best_trial(task, tmp_path, scripted, plans, chosen):
    Recording.calls = []
    trained = scripted(lambda name: plans[int(name.removeprefix("search/trial"))])
    config, summary = search(task, TINY, tmp_path)
    assert [name for name, _ in trained] == ["search/trial0", "search/trial1", "search/trial2"]
    assert trained[0][1] == TINY  # trial 0 is the given recipe, unchanged
    assert config == trained[chosen][1] and summary["chosen"] == {"trial": chosen, **searched(config)}
    assert summary["given"]["accuracy"] == pytest.approx(sum(np.equal(plans[0]([0, 1, 2]), [0, 1, 2])) / 3)
    assert summary["held_out_rows"] == 3 and len(Recording.calls) == 1  # labelled once for every trial
    assert Recording.calls[0][1].isdisjoint(split_validation(task.train, TINY.seed, fold=1)[1]["text"])
    assert json.loads(json.dumps(summary)) == summary
    notes = trials_table(summary)["note"].tolist()
    assert notes[0].startswith("given") and notes[chosen].endswith("chosen") and notes.count("") == 3 - 1 - (chosen > 0)


def test_the_same_seed_draws_the_same_trials(task, tmp_path, scripted):
    scripted(lambda name: right)
    trials = [search(task, replace(TINY, seed=seed), tmp_path / str(n))[1]["trials"]
              for n, seed in enumerate([0, 0, 1])]
    params = [[(t["learning_rate"], t["epochs"], t["temperature"]) for t in found] for found in trials]
    assert params[0] == params[1] and params[0][1:] != params[2][1:]
    assert params[0][0] == params[2][0] == tuple(searched(TINY).values()) and params[0][1] != params[0][0]


def test_re_softening_teacher_rows_equals_softening_at_the_new_temperature():
    probs = np.array([[0.7, 0.2, 0.1], [0.05, 0.05, 0.9], [0.4, 0.35, 0.25]])
    labels = TeacherLabels(["a", "b", "c"], probs, np.ones(3, dtype=bool))
    again = at_temperature(teacher_rows(["x", "y", "z"], labels, 2.0), 3.5)
    direct = teacher_rows(["x", "y", "z"], labels, 3.5)
    assert np.allclose(again["soft_targets"].tolist(), direct["soft_targets"].tolist())
    assert (again["temperature"] == 3.5).all() and again["sample_weight"].tolist() == direct["sample_weight"].tolist()


def test_search_trials_reach_student_tuned_and_the_guard_but_not_student_base(task, tmp_path, scripted):
    """student-base (every fold) keeps the given recipe; every student-tuned, refit included, gets the chosen one."""
    trained = scripted(lambda name: {"search/trial0": first_right, "search/trial1": right}.get(
        name, first_right if name.endswith("base") else right))
    result = distill(task, SeedTeacher(task), TINY, progress=False, work_dir=tmp_path, guard_folds=2,
                     search_trials=2)
    chosen = trained[2][1]  # search/trial1, better than the given recipe
    assert chosen != TINY and result.stats["search"]["chosen"]["trial"] == 1
    configs = {name: config for name, config in trained}
    assert {name for name in configs if configs[name] == TINY} == {"base", "fold1-base", "search/trial0"}
    assert {name for name in configs if configs[name] == chosen} == {"tuned", "fold1-tuned", "tuned-refit",
                                                                     "search/trial1"}
    assert result.student_tuned.config == chosen and result.chosen == "student-tuned"
    with pytest.raises(ValueError, match="search_trials"):
        distill(task, None, TINY, search_trials=-1)


# ---- the real thing: MiniLM students, a real teacher, real Optuna -------------------------------------------


@pytest.fixture(scope="module")
def searched_run(task, tmp_path_factory):
    """distill with 2 search trials, every student prediction and training recorded in order."""
    events, work = [], tmp_path_factory.mktemp("work")
    train, predict = Recipe.train, TrainedStudent.predict_proba

    def spy_train(self, rows, validation, name):
        events.append(("train", name, list(rows["text"])))
        return train(self, rows, validation, name)

    def spy_predict(self, texts, *args, **kwargs):
        events.append(("predict", None, list(texts)))
        return predict(self, texts, *args, **kwargs)

    Recording.calls = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Recipe, "train", spy_train)
        patch.setattr(TrainedStudent, "predict_proba", spy_predict)
        for module in (distill_module, guard_module):  # no extra guard folds: this is about the search
            patch.setattr(module, "TIE_FOLDS", 1)
        result = distill(task, Recording(task), TINY, progress=False, work_dir=work, refit=False, search_trials=2)
    return result, events, list(Recording.calls), work


@pytest.mark.slow
def test_distill_records_the_search_and_trains_student_tuned_with_the_chosen_recipe(task, searched_run):
    from helpers.pipeline import metadata

    result, _, _, work = searched_run
    summary = result.stats["search"]
    assert [t["trial"] for t in summary["trials"]] == [0, 1] and summary["given"] == summary["trials"][0]
    assert {k: summary["trials"][0][k] for k in ("learning_rate", "epochs", "temperature")} == searched(TINY)
    assert summary["trials"][1]["learning_rate"] != TINY.learning_rate  # trial 1 is a new recipe
    chosen = replace(TINY, **{k: summary["chosen"][k] for k in ("learning_rate", "epochs", "temperature")})
    assert result.student_tuned.config == chosen and result.student_base.config == TINY
    assert sorted(p.name for p in (work / "search").iterdir()) == ["trial0", "trial1"]
    logged = json.loads(json.dumps(metadata(task, "seed", TINY, result, [], None)))
    assert logged["data"]["search"] == summary


@pytest.mark.slow
def test_the_search_never_shows_the_test_set_to_a_student_or_the_teacher(task, searched_run):
    result, events, calls, _ = searched_run
    test_texts = set(task.test["text"])
    assert "can I get a refund" in CONTEXT and calls and events  # a test text hides in the corpus
    for kind, name, texts in events + [("label", None, texts) for texts, _ in calls]:
        assert test_texts.isdisjoint(texts), (kind, name)
    _, validation = split_validation(task.train, TINY.seed, fold=1)  # the guard pools fold 0 alone here
    _, guarded = split_validation(task.train, TINY.seed, fold=0)
    assert set(validation["text"]).isdisjoint(guarded["text"]) and result.stats["search"]["fold"] == 1
    names = [name for kind, name, _ in events if kind == "train"]
    assert names[:3] == ["base", "search/trial0", "search/trial1"] and "tuned" in names
    for at, (kind, name, _) in enumerate(events):
        if kind == "train" and name.startswith("search/"):  # each trial is scored on fold 1's held-out rows
            assert events[at + 1] == ("predict", None, validation["text"].tolist())
    search_labels, _ = calls[0]
    assert search_labels == result.unlabelled_texts and set(validation["text"]).isdisjoint(calls[0][1])
    assert len(calls) == 2  # once for the whole search (2 trials), once for student-tuned


def test_the_cli_passes_search_trials_on_and_rejects_negative_ones(tmp_path, monkeypatch, capsys):
    import helpers.pipeline
    from helpers.cli import main

    class Report:
        def text(self) -> str:
            return "report"

    seen = {}
    monkeypatch.setattr(helpers.pipeline, "run", lambda *args, **kwargs: seen.update(kwargs) or Report())
    task = str(make_task(tmp_path / "data-t"))
    for flags, trials in ([], 0), (["--search-trials", "3"], 3):
        assert main(["distill", "--task", task, "--teacher", "seed", *flags]) == 0
        assert seen["search_trials"] == trials
    seen.clear()
    for bad, message in ("-1", "expected a number >= 0, got -1"), ("two", "expected a whole number, got 'two'"):
        with pytest.raises(SystemExit) as stopped:
            main(["distill", "--task", task, "--search-trials", bad])
        assert stopped.value.code == 2 and message in capsys.readouterr().err and not seen
