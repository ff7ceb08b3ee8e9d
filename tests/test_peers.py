"""benchmarks/peers.py without training anything: resuming skips a recorded run, and the report's peers
table is mean ± std over seeds. SetFit is never imported here (CI does not install the bench extra)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import peers  # noqa: E402
from report import peers_table  # noqa: E402

from helpers.task import load_task  # noqa: E402


def record(peer: str, seed: int, accuracy: float, train_seconds: float) -> dict:
    """Shaped as peers.run_one writes one (figures in the range SetFit reaches on BANKING77 10-shot)."""
    return {"peer": peer, "task": "banking77-10shot", "seed": seed, "n_train": 770, "n_test": 3080,
            "accuracy": accuracy, "macro_f1": accuracy - 0.01, "accuracy_ci": [accuracy - 0.015, accuracy + 0.015],
            "train_seconds": train_seconds, "predict_seconds": 20.0, "load_before": 2.0, "load_after": 2.5,
            "cpu_count": 2, "finished": "2026-12-02T17:00:00", "settings": {"max_length": 128}}


def test_recorded_run_is_skipped_and_a_new_one_written(tmp_path, monkeypatch):
    calls = []
    monkeypatch.setitem(peers.PEERS, "fake", lambda task, seed: calls.append(seed) or {"accuracy": 0.5})
    task = load_task(ROOT / "data-banking-routing")
    done = peers.result_path("fake", task.name, 0, tmp_path)
    done.write_text(json.dumps(record("fake", 0, 0.9, 1.0)))
    assert peers.run_one("fake", task, 0, tmp_path) is None  # present: not retrained, not overwritten
    assert json.loads(done.read_text())["accuracy"] == 0.9
    out = peers.run_one("fake", task, 1, tmp_path)
    assert out == peers.result_path("fake", task.name, 1, tmp_path) and calls == [1]
    written = json.loads(out.read_text())
    assert (written["peer"], written["task"], written["seed"], written["accuracy"]) == ("fake", task.name, 1, 0.5)
    assert written["n_train"] == len(task.train) and written["n_test"] == len(task.test)


def test_peers_table_shows_mean_and_spread_over_seeds(tmp_path):
    assert "Not run yet" in peers_table(tmp_path)
    folder = tmp_path / "benchmarks" / "results" / "peers"
    folder.mkdir(parents=True)
    for seed, accuracy, seconds in [(0, 0.80, 3000.0), (1, 0.84, 3200.0)]:
        (folder / f"setfit-banking77-10shot-seed{seed}.json").write_text(json.dumps(record("setfit", seed, accuracy,
                                                                                          seconds)))
    table = peers_table(tmp_path)
    lines = table.splitlines()
    header = [cell.strip() for cell in next(line for line in lines if "accuracy" in line and "|" in line).split("|")]
    row = dict(zip(header, [cell.strip() for cell in next(line for line in lines if "setfit" in line).split("|")]))
    assert row["task"] == "banking77-10shot" and row["seeds"] == "2" and row["n_train"] == "770"
    assert row["window"] == "128"  # the word pieces SetFit read
    assert row["accuracy"] == "0.82 ± 0.028"  # mean 0.82, sample std of (0.80, 0.84) = 0.0283
    assert row["macro_f1"] == "0.81 ± 0.028"
    assert float(row["train s"]) == 3100  # mean train seconds
