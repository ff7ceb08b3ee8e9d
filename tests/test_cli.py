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
    (["--seed", "x"], "invalid int value"),
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
