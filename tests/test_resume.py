"""A training killed part-way resumes from its last whole checkpoint, and only its own."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pytest
from conftest import make_task

from helpers.checkpoints import last_complete_checkpoint, prepare_work_dir
from helpers.guard import split_validation
from helpers.student import StudentConfig, gold_rows, train_student
from helpers.task import load_task

ROOT = Path(__file__).resolve().parents[1]
# Batches of similar length (helpers/batching.py): its order must come from (seed, epoch) alone, or a resumed run
# would see other batches than the unbroken one and end elsewhere.
CONFIG = StudentConfig(epochs=2, min_steps=60, min_examples_per_class=0, batch_size=4, patience=100,
                       group_by_length=True)
TRAIN = [("I want my money back", "refund"), ("please refund the order", "refund"),
         ("refund me for the broken kettle", "refund"), ("money back for my late order", "refund"),
         ("parcel has not arrived", "delivery"), ("where is my package", "delivery"),
         ("courier lost my box", "delivery"), ("delivery is two weeks late", "delivery")]
CHILD = """
import json, sys
from pathlib import Path
from helpers.guard import split_validation
from helpers.student import StudentConfig, gold_rows, train_student
from helpers.task import load_task
task = load_task(sys.argv[1])
train, validation = split_validation(task.train, 0)
train_student(gold_rows(train, task.classes), validation, task.classes,
              StudentConfig(**json.loads(sys.argv[3])), Path(sys.argv[2]), progress=False)
"""


@pytest.fixture(scope="module")
def task(tmp_path_factory):
    return load_task(make_task(tmp_path_factory.mktemp("t") / "data-shop", train=TRAIN))


def train(task, work: Path, resume: bool = False):
    rows, validation = split_validation(task.train, 0)
    return train_student(gold_rows(rows, task.classes), validation, task.classes, CONFIG, work,
                         progress=False, resume=resume)


def kill_after_first_checkpoint(task, work: Path) -> str:
    """Start training in another process and SIGKILL it once a whole checkpoint exists."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(task.directory), str(work),
                              json.dumps(asdict(CONFIG))], cwd=ROOT)
    deadline = time.monotonic() + 300
    while child.poll() is None and time.monotonic() < deadline:
        if (work / "run.json").exists() and last_complete_checkpoint(work):
            child.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    child.wait()
    assert child.returncode == -signal.SIGKILL, "training ended before it could be interrupted"
    return last_complete_checkpoint(work)


@pytest.mark.slow
def test_killed_training_resumes_from_its_checkpoint_and_ends_where_an_unbroken_run_does(task, tmp_path):
    checkpoint = kill_after_first_checkpoint(task, tmp_path / "killed")
    step = int(Path(checkpoint).name.split("-")[1])
    assert 0 < step < CONFIG.min_steps
    resumed = train(task, tmp_path / "killed", resume=True)
    unbroken = train(task, tmp_path / "unbroken")
    assert resumed.resumed_from == Path(checkpoint).name
    assert unbroken.resumed_from is None
    final_step = max(entry["step"] for entry in resumed.log_history)
    assert final_step == max(entry["step"] for entry in unbroken.log_history) >= CONFIG.min_steps
    texts = [text for text, _ in TRAIN]
    np.testing.assert_allclose(resumed.predict_proba(texts), unbroken.predict_proba(texts), atol=1e-4)


def test_a_half_written_checkpoint_is_skipped(tmp_path):
    for step, whole in [(10, True), (20, True), (30, False)]:
        folder = tmp_path / f"checkpoint-{step}"
        folder.mkdir()
        if whole:
            (folder / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    (tmp_path / "checkpoint-20" / "trainer_state.json").write_text('{"global_st')  # cut mid-write
    assert last_complete_checkpoint(tmp_path) == str(tmp_path / "checkpoint-10")


def test_checkpoints_of_another_run_are_never_resumed(tmp_path):
    assert prepare_work_dir(tmp_path / "run", "stamp-a", resume=False) is None
    (tmp_path / "run" / "checkpoint-10").mkdir()
    (tmp_path / "run" / "checkpoint-10" / "trainer_state.json").write_text("{}")
    with pytest.raises(ValueError, match="different run"):
        prepare_work_dir(tmp_path / "run", "stamp-b", resume=True)
    assert prepare_work_dir(tmp_path / "run", "stamp-a", resume=True).endswith("checkpoint-10")


def test_a_fresh_run_clears_only_folders_a_run_made(tmp_path):
    prepare_work_dir(tmp_path / "run", "stamp", resume=False)
    (tmp_path / "run" / "checkpoint-10").mkdir()
    assert prepare_work_dir(tmp_path / "run", "stamp", resume=False) is None
    assert not (tmp_path / "run" / "checkpoint-10").exists()
    mine = tmp_path / "my-notes"
    mine.mkdir()
    (mine / "thesis.txt").write_text("do not delete")
    with pytest.raises(ValueError, match="not made by a training run"):
        prepare_work_dir(mine, "stamp", resume=False)
    assert (mine / "thesis.txt").read_text() == "do not delete"
