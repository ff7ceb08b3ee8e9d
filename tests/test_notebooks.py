"""The notebooks run headless with papermill parameters, and are stored clean.

nbval (in `make test`) runs them with their default parameters; these tests run
the training notebook on two other tasks with tiny parameters and check what it
recorded, not what it printed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd
import papermill
import pytest

from helpers.guard import TIE_FOLDS
from helpers.guard import tied as guard_tied
from helpers.task import load_task

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


def folder_bytes(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


@pytest.mark.slow
# Short-text tasks: on the rewritten long-text e-commerce task one such run (two folds, refit, retraining)
# was still going after 32 minutes in a fresh-clone CI here, more than CI can give it.
@pytest.mark.parametrize("task,teacher,folds", [("data-banking-routing", "seed", 2),
                                                ("data-injury", "local:smollm2-135m+seed", 1)])
def test_training_notebook_runs_on_other_tasks(tmp_path, task, teacher, folds, quiet_notebook):
    """Training, retraining with labels from a file (banking) and (injury, as the README shows) deployment,
    quietly.

    The task folder is copied next to the model so the deployment notebook finds its
    test set from training-logs.json alone, as it does in the repository. Retraining runs with the
    seed teacher: with the committee it asks SmolLM2 twice more, ~2 minutes of CI for no new branch.
    """
    task_dir = Path(shutil.copytree(ROOT / task, tmp_path / task))
    before = folder_bytes(task_dir)
    my_labels = tmp_path / "labels.csv"
    # banking: the other recipe (warm start), a two-trial recipe search and one retraining; injury: the
    # defaults and a time budget (3 s) that its two students overrun, so no tie-break fold or refit fits
    banking = task == "data-banking-routing"
    if banking:
        texts = list(load_task(task_dir).unstructured["text"][:2])
        pd.DataFrame({"question": texts, "answer": load_task(task_dir).classes[0]}).to_csv(my_labels, index=False)
    out = tmp_path / "model"
    options = {"RECIPE": "lpft", "SEARCH_TRIALS": 2} if banking else {"BUDGET_MINUTES": 0.05}
    papermill.execute_notebook(
        str(ROOT / "notebooks" / "classification-training.ipynb"), str(tmp_path / "run.ipynb"),
        cwd=str(ROOT / "notebooks"), progress_bar=False,
        parameters={"TASK_DIR": str(task_dir), "TEACHER": teacher, "MAX_UNLABELLED": 24,
                    "EPOCHS": 1, "MIN_STEPS": 20, "OUTPUT_DIR": str(out), "CACHE_DIR": str(tmp_path / "cache"),
                    "RUNS_DIR": str(tmp_path / "runs"), "GUARD_FOLDS": folds, "MY_LABELS": str(my_labels),
                    **options})
    logs = json.loads((out / "training-logs.json").read_text())
    assert logs["parameters"]["warm_start"] == ("align+probe" if banking else "none")
    assert ("search" in logs["data"]) is banking
    assert logs["task"] == task.removeprefix("data-") and logs["teacher"] == teacher
    assert logs["task_folder"] == task
    guard = logs["data"]["guard"]
    if not banking:  # over budget: the guard's verdict on one fold stands and nothing is refit
        extra = guard_tied(guard) or logs["chosen"] == "student-tuned"
        assert guard["folds"] == 1 and "refit_teacher" not in logs["data"]
        assert logs["data"]["budget"]["minutes"] == 0.05 and bool(logs["data"]["budget"]["skipped"]) == extra
        assert ("Time budget:" in outputs(tmp_path / "run.ipynb")) == extra
    else:
        assert guard["asked_folds"] == folds and guard["folds"] in (folds, TIE_FOLDS)  # a tie pools 3
        assert ("refit_teacher" in logs["data"]) == (logs["chosen"] == "student-tuned")  # kept tuned is refit
    assert (tmp_path / "runs" / logs["task"] / "base" / "run.json").exists()  # checkpoints went where asked
    models = [row["model"] for row in logs["evaluation"]]
    assert models[1:] == ["student-base", "student-tuned"]
    assert all(0 <= row["accuracy"] <= 1 for row in logs["evaluation"])
    assert (tmp_path / f"{logs['task']}-model.tar").exists()
    printed = outputs(tmp_path / "run.ipynb")
    assert "Committee weights" in printed or teacher == "seed"
    assert "Best on test:" in printed and "parameters" in printed  # the interpretation and payoff cell
    assert ("First the pooler is aligned" in printed) is banking
    assert ("recipe search trial1" in printed and "chosen" in printed) is banking
    if banking:
        assert "2 rows labelled by you" in printed and "retrained student-" in printed
        assert (tmp_path / "runs" / f"{logs['task']}-retrain" / "base" / "run.json").exists()
    else:  # no labels yet: the notebook writes the file to fill in, with the least-sure texts, and stops there
        assert "0 rows labelled by you" in printed and "retrained student-" not in printed
        assert pd.read_csv(my_labels)["question"].notna().all() and len(pd.read_csv(my_labels)) > 0
    assert folder_bytes(task_dir) == before  # the learner's labels never went into the task's files
    quiet_notebook(tmp_path / "run.ipynb")
    if task == "data-injury":  # the README's example: the deployment notebook given only the tarball
        papermill.execute_notebook(
            str(ROOT / "notebooks" / "classification-model-deployment.ipynb"), str(tmp_path / "deploy.ipynb"),
            cwd=str(ROOT / "notebooks"), progress_bar=False,
            parameters={"MODEL_TAR": str(tmp_path / "injury-model.tar"), "MODEL_DIR": str(out),
                        "RUN_ONNX": False})
        printed = outputs(tmp_path / "deploy.ipynb")
        assert "trained on task: injury" in printed and "accuracy:" in printed, printed[-2000:]
        assert (task_dir / "test-predictions.csv").exists()
        quiet_notebook(tmp_path / "deploy.ipynb")


def outputs(notebook: Path) -> str:
    """Everything an executed notebook printed or displayed as text."""
    text = []
    for cell in json.loads(notebook.read_text())["cells"]:
        for output in cell.get("outputs", []):
            found = output.get("text") or output.get("data", {}).get("text/plain", "")
            text.append("".join(found) if isinstance(found, list) else found)
    return "\n".join(text)
