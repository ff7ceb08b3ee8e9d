"""`python -m helpers distill` under torchrun: two CPU processes (gloo), the Trainer's DDP, for real.

The task is tiny and `--test-mode` trains 10 steps per student (the guard's tie rule makes that
six trainings and a refit), so the run takes one to two minutes on 2 cores; what is checked is the
plumbing: one model/ written once by rank 0, a report printed once, logs that say two processes
trained, and a model that loads and gets the easy test rows right. (Measured once by hand: the
single-process run of the same command gives the same class probabilities to 3 decimals; the test
does not repeat it, to save CI a minute.)
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import make_task

from helpers.deploy import load_model
from helpers.export import MODEL_FILES

ROOT = Path(__file__).resolve().parents[1]
TRAIN = [(f"{verb} my money back for order {i}", "refund") for i, verb in enumerate(("I want", "please give", "send"))]
TRAIN += [(f"parcel {i} has not arrived, where is it", "delivery") for i in range(3)]
TEST = [("please give my money back", "refund"), ("I want a refund now", "refund"),
        ("my parcel has not arrived", "delivery"), ("where is my parcel", "delivery")]


def distill(task: Path, out: Path, *launcher: str) -> subprocess.CompletedProcess:
    """The CLI on the tiny recipe, under `launcher` (torchrun) or plainly."""
    flags = ["--task", str(task), "--teacher", "seed", "--out", str(out), "--work-dir", str(out.parent / "runs"),
             "--cache", str(out.parent / "cache"), "--device", "cpu", "--test-mode"]
    return subprocess.run([*launcher, "-m", "helpers", "distill", *flags], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)


@pytest.mark.slow
def test_distill_under_torchrun_on_two_cpu_processes(tmp_path):
    task = make_task(tmp_path / "data-shop", train=TRAIN, test=TEST)
    torchrun = (sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2")
    two = distill(task, tmp_path / "two" / "model", *torchrun)
    assert two.returncode == 0, two.stderr[-3000:]
    assert two.stdout.count("model written to") == 1  # rank 0 alone reports
    assert sorted(p.name for p in (tmp_path / "two" / "model").iterdir()) == sorted(MODEL_FILES)
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["cache", "model", "runs", "shop-model.tar"]
    logs = json.loads((tmp_path / "two" / "model" / "training-logs.json").read_text())
    assert logs["device"]["name"] == "cpu" and logs["device"]["processes"] == 2
    answers = load_model(tmp_path / "two" / "model", backend="pytorch")([text for text, _ in TEST])
    labels = [max(scores, key=lambda s: s["score"])["label"] for scores in answers]  # every class's score, per text
    assert sum(label == gold for label, (_, gold) in zip(labels, TEST)) >= 3, answers  # one process: 4 of 4
