"""Recipe search: a few Optuna trials over student-tuned's learning rate, epochs and temperature.

Opt-in (SEARCH_TRIALS in the notebook, ``--search-trials`` on the CLI; 0 is off): each
trial is one more training. Trials are scored the way the never-worse guard scores
students, on seed rows held out by a fold of `split_validation` that the guard never
judges on, and never on test: a recipe picked on the test set would make every test
number after it a lie, and one picked on the guard's rows would tilt the guard towards
student-tuned.
Trial 0 is the recipe given, so the search can only move to a recipe that did at least
as well on those rows, and a tie keeps the given one.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace

import numpy as np
import pandas as pd

from helpers.distill import Recipe
from helpers.guard import merit, pooled_scores, split_validation
from helpers.recipes import StudentConfig
from helpers.student import TrainedStudent, gold_rows
from helpers.teachers.base import Teacher

SPACE = {"learning_rate": (1e-5, 3e-4), "epochs": (1, 8), "temperature": (1.0, 4.0)}


def search_recipe(recipe: Recipe, teacher: Teacher, texts: list[str], trials: int,
                  fold: int) -> tuple[StudentConfig, dict]:
    """The best of `trials` recipes for student-tuned on `fold`'s held-out seed rows, and a summary.

    Every trial learns as the guard's student-tuned does: the gold rows of `fold` plus
    what the teacher, rebuilt without that fold's held-out rows, says of `texts`. The
    teacher labels once; a trial only re-softens its answers (`at_temperature`).

    Args:
        trials: How many recipes to train and score, the given one included (1 or more).
        fold: The `split_validation` fold whose held-out rows score the trials; pass one
            the guard never pools (`run_recipe` does), so it judges on rows the search did not.

    Returns:
        The chosen config (the given one with the searched settings replaced) and a
        JSON-serialisable summary: every trial's settings and scores, the given recipe's
        scores, the chosen trial and the number of held-out rows.
    """
    import optuna

    if trials < 1:
        raise ValueError(f"the recipe search needs 1 or more trials, got {trials}")
    train, validation = split_validation(recipe.task.train, recipe.config.seed, fold=fold)
    gold = gold_rows(train, recipe.task.classes)
    taught = recipe.teach(teacher.without(validation.index), texts)[0]
    found = []

    def objective(trial: optuna.Trial) -> float:
        config = suggest_config(trial, recipe.config)
        rows = pd.concat([gold, at_temperature(taught, config.temperature)], ignore_index=True)
        student = replace(recipe, config=config).train(rows, validation, f"search/trial{trial.number}")
        found.append({"trial": trial.number, **searched(config),
                      **held_out_scores(student, validation, recipe.task.classes),
                      "train_seconds": round(float(student.train_seconds), 1)})
        return objective_value(found[-1], len(validation))

    with quiet_optuna():
        study = optuna.create_study(direction="maximize",
                                    sampler=optuna.samplers.TPESampler(seed=recipe.config.seed))
        study.enqueue_trial(searched(recipe.config))
        study.optimize(objective, n_trials=trials)
    best = best_trial(found)
    chosen = {name: best[name] for name in SPACE}
    summary = {"trials": found, "given": found[0], "chosen": {"trial": best["trial"], **chosen},
               "held_out_rows": len(validation), "fold": fold}
    return replace(recipe.config, **chosen), summary


def searched(config: StudentConfig) -> dict:
    """The settings the search varies, as plain numbers (the summary goes to training-logs.json)."""
    return {"learning_rate": float(config.learning_rate), "epochs": int(config.epochs),
            "temperature": float(config.temperature)}


def suggest_config(trial, given: StudentConfig) -> StudentConfig:
    """`given` with the searched settings drawn by Optuna's `trial`.

    Each range is widened to hold the given value: trial 0 replays the given recipe,
    and a value outside its range would make Optuna warn and leave it out of TPE's model.
    """
    def bounds(name: str) -> tuple:
        low, high = SPACE[name]
        return min(low, getattr(given, name)), max(high, getattr(given, name))

    return replace(given, learning_rate=trial.suggest_float("learning_rate", *bounds("learning_rate"), log=True),
                   epochs=trial.suggest_int("epochs", *bounds("epochs")),
                   temperature=trial.suggest_float("temperature", *bounds("temperature")))


def at_temperature(rows: pd.DataFrame, temperature: float) -> pd.DataFrame:
    """Teacher rows re-softened to `temperature`, so one labelling serves every trial.

    `teacher_rows` stores p^(1/T0) renormalised; raising that to T0/T and renormalising
    gives p^(1/T) renormalised, what `teacher_rows` would have made at T (synthetic rows too).
    """
    if rows.empty:
        return rows
    targets = np.array(rows["soft_targets"].tolist()) ** (rows["temperature"].to_numpy()[:, None] / temperature)
    targets /= targets.sum(axis=1, keepdims=True)
    return rows.assign(soft_targets=targets.tolist(), temperature=temperature)


def held_out_scores(student: TrainedStudent, validation: pd.DataFrame, classes: list[str]) -> dict:
    """Accuracy and macro-F1 on the held-out seed rows, as the guard measures them."""
    truth = np.array([classes.index(label) for label in validation["label"]])
    predicted = student.predict_proba(validation["text"].tolist()).argmax(1)
    scores = pooled_scores([(predicted, truth)])
    return {"accuracy": scores["accuracy"], "f1": float(scores["f1"])}


def objective_value(scores: dict, rows: int) -> float:
    """One number for TPE that orders trials as `merit` does: macro-F1 only breaks accuracy ties,
    since f1 / (rows + 1) stays below 1 / rows, the least one held-out row moves accuracy."""
    return scores["accuracy"] + scores["f1"] / (rows + 1)


def best_trial(found: list[dict]) -> dict:
    """The trial with the best `merit`; on a tie the earliest, so the given recipe (trial 0) wins ties."""
    return max(found, key=lambda scores: (merit(scores), -scores["trial"]))


@contextmanager
def quiet_optuna() -> Iterator[None]:
    """Optuna logs every trial at INFO; the trainings print their own lines, so keep it to warnings."""
    import optuna

    level = optuna.logging.get_verbosity()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        yield
    finally:
        optuna.logging.set_verbosity(level)


def trials_table(summary: dict) -> pd.DataFrame:
    """The search's trials, one row each, marking the given recipe and the chosen one."""
    frame = pd.DataFrame(summary["trials"]).set_index("trial")
    frame["note"] = ""
    frame.loc[0, "note"] = "given"
    frame.loc[summary["chosen"]["trial"], "note"] += " chosen"
    frame["note"] = frame["note"].str.strip()
    frame["learning_rate"] = frame["learning_rate"].map("{:.1e}".format)  # 6.5e-05, not 0.000065
    return frame.round({"temperature": 2, "accuracy": 3, "f1": 3})
