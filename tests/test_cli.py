"""The command line: readable errors and exit codes, never a traceback for user mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_task

ROOT = Path(__file__).resolve().parents[1]


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


def test_validate_ok_and_failing_folders(tmp_path):
    good = make_task(tmp_path / "data-good")
    bad = make_task(tmp_path / "data-bad", test=[("hi", "greeting")])
    ok = cli("validate", str(good))
    assert ok.returncode == 0 and "OK: 0 error(s)" in ok.stdout
    failed = cli("validate", str(good), str(bad))
    assert failed.returncode == 1
    assert "test.csv, row 2, column 'answer': unknown label" in failed.stdout


@pytest.mark.parametrize("flags,message", [
    (["--max-unlabelled", "0"], "expected a number >= 1, got 0"),
    (["--epochs", "three"], "expected a whole number, got 'three'"),
    (["--max-steps", "-5"], "expected a number >= 0, got -5"),
    (["--seed", "x"], "invalid int value"),
    (["--budget-minutes", "-1"], "expected a number >= 0, got -1"),
    (["--budget-minutes", "nan"], "expected a number >= 0, got nan"),
    (["--budget-minutes", "soon"], "expected a number, got 'soon'"),
    (["--max-length", "0"], "expected a number >= 1, got 0"),
    (["--max-length", "1000"], "is 1000; minilm reads 16 to 512 word pieces: pick one in that range"),
])
def test_bad_flags_are_explained(tmp_path, flags, message):
    result = cli("distill", "--task", str(make_task(tmp_path / "data-t")), *flags)
    assert result.returncode == 2 and message in result.stderr and "Traceback" not in result.stderr


def test_bad_task_and_teacher_fail_without_traceback(tmp_path):
    missing = cli("distill", "--task", str(tmp_path / "nope"), "--teacher", "seed")
    assert missing.returncode == 2 and "task folder not found" in missing.stderr
    assert "Traceback" not in missing.stderr
    spec = cli("distill", "--task", str(make_task(tmp_path / "data-t")), "--teacher", "gpt5")
    assert spec.returncode == 2 and "unknown teacher spec 'gpt5'" in spec.stderr
    assert "Traceback" not in spec.stderr


def test_the_recipe_flag_reaches_the_students_config_and_epochs_override_it(tmp_path, monkeypatch, capsys):
    import helpers.pipeline
    from helpers.budget import BUDGET_MINUTES
    from helpers.cli import main
    from helpers.recipes import DEFAULT_RECIPE, StudentConfig

    class Report:
        def text(self) -> str:
            return "report"

    seen = {}
    monkeypatch.setattr(helpers.pipeline, "run", lambda task, teacher, out, config, *a, **k: seen.update(
        config=config, budget=k["budget_minutes"]) or Report())
    task = str(make_task(tmp_path / "data-t"))
    assert main(["distill", "--task", task, "--teacher", "seed"]) == 0
    assert seen["config"].warm_start == StudentConfig.recipe(DEFAULT_RECIPE).warm_start
    assert main(["distill", "--task", task, "--teacher", "seed", "--recipe", "lpft", "--epochs", "3"]) == 0
    assert (seen["config"].warm_start, seen["config"].learning_rate, seen["config"].epochs) == ("align+probe", 3e-5, 3)
    assert main(["distill", "--task", task, "--teacher", "seed", "--recipe", "v3"]) == 0
    assert (seen["config"].warm_start, seen["config"].epochs) == ("none", 5)
    assert seen["config"].max_steps == StudentConfig.recipe("v3").max_steps > 0
    assert main(["distill", "--task", task, "--teacher", "seed", "--max-steps", "0"]) == 0
    assert seen["config"].max_steps == 0
    assert seen["config"].max_length == 0  # chosen from the task's texts (tests/test_window.py)
    assert main(["distill", "--task", task, "--teacher", "seed", "--max-length", "192"]) == 0
    assert seen["config"].max_length == 192
    assert seen["budget"] == BUDGET_MINUTES > 0  # the default run has a time budget
    assert main(["distill", "--task", task, "--teacher", "seed", "--budget-minutes", "0"]) == 0
    assert seen["budget"] == 0
    with pytest.raises(SystemExit) as stopped:
        main(["distill", "--task", task, "--recipe", "v9"])
    assert stopped.value.code == 2 and "invalid choice: 'v9'" in capsys.readouterr().err
