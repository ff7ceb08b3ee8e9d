"""The notebooks run headless with papermill parameters, and are stored clean.

nbval (in `make test`) runs them with their default parameters; these tests run
the training notebook on two other tasks with tiny parameters and check what it
recorded, not what it printed.
"""

from __future__ import annotations

import json
from pathlib import Path

import papermill
import pytest

from helpers.distill import TIE_FOLDS

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_stored_stripped(path):
    nb = json.loads(path.read_text())
    for cell in nb["cells"]:
        if cell["cell_type"] == "code":
            assert cell["outputs"] == [] and cell["execution_count"] is None, path.name


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_have_a_parameters_cell_of_literals(path):
    nb = json.loads(path.read_text())
    tagged = [c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, path.name
    for line in "".join(tagged[0]["source"]).splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition(" = ")
            assert name.isupper() and value, line


@pytest.mark.slow
@pytest.mark.parametrize("task,teacher,folds", [("data-ecommerce", "seed", 2),
                                                ("data-injury", "local:smollm2-135m+seed", 1)])
def test_training_notebook_runs_on_other_tasks(tmp_path, task, teacher, folds):
    out = tmp_path / "model"
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "classification-training.ipynb"), str(tmp_path / "run.ipynb"),
        cwd=str(ROOT / "notebooks"), progress_bar=False,
        parameters={"TASK_DIR": str(ROOT / task), "TEACHER": teacher, "MAX_UNLABELLED": 24,
                    "EPOCHS": 1, "OUTPUT_DIR": str(out), "CACHE_DIR": str(tmp_path / "cache"),
                    "RUNS_DIR": str(tmp_path / "runs"), "GUARD_FOLDS": folds})
    logs = json.loads((out / "training-logs.json").read_text())
    assert logs["task"] == task.removeprefix("data-") and logs["teacher"] == teacher
    guard = logs["data"]["guard"]
    assert guard["asked_folds"] == folds and guard["folds"] in (folds, TIE_FOLDS)  # a tie pools 3
    assert ("refit_teacher" in logs["data"]) == (logs["chosen"] == "student-tuned")  # kept tuned is refit
    assert (tmp_path / "runs" / logs["task"] / "base" / "run.json").exists()  # checkpoints went where asked
    models = [row["model"] for row in logs["evaluation"]]
    assert models[1:] == ["student-base", "student-tuned"]
    assert all(0 <= row["accuracy"] <= 1 for row in logs["evaluation"])
    assert (tmp_path / f"{logs['task']}-model.tar").exists()
