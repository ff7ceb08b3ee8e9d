"""Peers beside our student on the same k-shot folders and seeds (issue #16, point 3).

    pip install -e ".[bench]"
    python benchmarks/peers.py --seeds 0 1 2                                  # everything, resumable
    python benchmarks/peers.py --tasks banking77-10shot --peers setfit --seeds 0

Each peer trains on train.csv only (the seed rows: no teacher, no unlabelled rows, as SetFit is
normally used) and is scored on test.csv. Task folders are our example tasks and BANKING77 k-shot
folders built exactly as benchmarks/run.py builds them (data seed 0, the official test set), so the
peers see the rows our student sees. One JSON per (peer, task, seed) in benchmarks/results/peers/;
one that exists is skipped, so a killed run resumes where it stopped.

SetFit (1.2, the pip package) uses the student's body, all-MiniLM-L6-v2 from the local package,
and the window our student reads on that task (`helpers.window.fit_to_task`: 128 word pieces on short
texts, 256 on e-commerce and mental health). Its 1.x default (num_iterations=None,
"oversampling") makes every pair of seed rows: ~585,000 pairs, ~36,600 steps on BANKING77 10-shot,
days on 2 shared cores. So `--iterations 20` (the paper's and SetFit 0.x's default: 20 positive and
20 negative pairs per row), one body epoch, batch 16, logistic-regression head: the documented
few-shot recipe otherwise untouched.

FastFit is not run (FASTFIT below says why); `fastfit` on PyPI is an unrelated placeholder (0.1.0,
"in development", whose own import fails), IBM's FastFit is `fast-fit`.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from helpers.benchmark import build_banking77_task, find_banking77, scores, tfidf_baseline  # noqa: E402
from helpers.evaluate import evaluate_predictions  # noqa: E402
from helpers.task import Task, load_task  # noqa: E402

PEERS_DIR = ROOT / "benchmarks" / "results" / "peers"
EXAMPLE_TASKS = ["data-banking-routing", "data-ecommerce", "data-mental-health", "data-injury"]
BANKING77 = {"banking77-10shot": 10, "banking77-5shot": 5}  # the order runs go in
MAX_UNLABELLED = 1500  # as run.py; peers never read unstructured.csv, but the folder is then identical
FASTFIT = ("fast-fit 1.2.1 (2024, the latest) installs but fails on import: it needs datasets.load_metric "
           "(gone since datasets 3; we need >=3), then Trainer(tokenizer=) (gone in transformers 5) and a hub metric")


def result_path(peer: str, task: str, seed: int, out_dir: Path = PEERS_DIR) -> Path:
    """Where one (peer, task, seed) record lives; its existence is what makes a rerun skip it."""
    return out_dir / f"{peer}-{task}-seed{seed}.json"


def task_folder(name: str, tmp: Path) -> Path:
    """An example task in place, or a BANKING77 k-shot folder built in `tmp` as run.py builds it."""
    if name not in BANKING77:
        return ROOT / name
    source = find_banking77(ROOT)
    if source is None:
        raise SystemExit("BANKING77 not found beside the checkout (../shared/benchmarks/banking77)")
    return build_banking77_task(source, BANKING77[name], tmp / f"data-{name}", MAX_UNLABELLED)


def run_tfidf(task: Task, seed: int) -> dict:
    """helpers.benchmark.tfidf_baseline as the student benchmark scores it (deterministic: seed unused)."""
    start = time.perf_counter()
    evaluation = tfidf_baseline(task)
    return {**scores(evaluation), "train_seconds": round(time.perf_counter() - start, 1), "predict_seconds": None}


def run_setfit(task: Task, seed: int, iterations: int = 20) -> dict:
    """SetFit's few-shot recipe on the student's body and window: contrastive body, then a logistic head."""
    from datasets import Dataset
    from setfit import SetFitModel, Trainer, TrainingArguments
    from transformers import set_seed

    from helpers.models import resolve_backbone
    from helpers.recipes import StudentConfig
    from helpers.window import fit_to_task

    window = fit_to_task(StudentConfig(), task).max_length  # what our student reads on this task
    set_seed(seed)
    path, kwargs = resolve_backbone("minilm")
    model = SetFitModel.from_pretrained(path, **kwargs)
    model.model_body.max_seq_length = window
    index = {c: i for i, c in enumerate(task.classes)}  # ints: no reliance on SetFit's string-label handling
    train = Dataset.from_dict({"text": task.train["text"].tolist(), "label": task.train["label"].map(index).tolist()})
    with tempfile.TemporaryDirectory() as tmp:
        args = TrainingArguments(output_dir=tmp, num_iterations=iterations, seed=seed, max_length=window,
                                 report_to="none", save_strategy="no", show_progress_bar=False)
        trainer = Trainer(model=model, args=args, train_dataset=train)
        start = time.perf_counter()
        trainer.train()
        train_s = time.perf_counter() - start
    start = time.perf_counter()
    pred = [task.classes[int(i)] for i in model.predict(task.test["text"].tolist(), batch_size=64)]
    predict_s = time.perf_counter() - start
    evaluation = evaluate_predictions("setfit", task.test["label"].tolist(), pred, task.classes)
    return {**scores(evaluation), "train_seconds": round(train_s, 1), "predict_seconds": round(predict_s, 1),
            "settings": {"num_iterations": iterations, "body_epochs": 1, "batch_size": 16,
                         "head": "LogisticRegression", "max_length": window, "body": "all-MiniLM-L6-v2"}}


PEERS: dict[str, Callable[[Task, int], dict]] = {"tfidf": run_tfidf, "setfit": run_setfit}


def run_one(peer: str, task: Task, seed: int, out_dir: Path = PEERS_DIR) -> Path | None:
    """Train and score one peer unless its record exists; the record says what ran and under what load."""
    out = result_path(peer, task.name, seed, out_dir)
    if out.exists():
        return None
    load_before = os.getloadavg()[0]
    record = {"peer": peer, "task": task.name, "seed": seed, "n_train": len(task.train), "n_test": len(task.test),
              **PEERS[peer](task, seed), "load_before": round(load_before, 2),
              "load_after": round(os.getloadavg()[0], 2), "cpu_count": os.cpu_count(),
              "finished": time.strftime("%Y-%m-%dT%H:%M:%S")}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=2) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", default=[*BANKING77, *EXAMPLE_TASKS])
    parser.add_argument("--peers", nargs="+", choices=list(PEERS), default=list(PEERS))
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--deadline", type=float, default=None, help="start no new run after this many minutes")
    args = parser.parse_args()
    stop_at = time.time() + 60 * args.deadline if args.deadline else float("inf")
    print(f"FastFit: {FASTFIT}", flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.tasks:
            task = load_task(task_folder(name, Path(tmp)))
            for seed in args.seeds:
                for peer in args.peers:
                    if time.time() > stop_at:
                        print("deadline reached: no new runs", flush=True)
                        return
                    out = run_one(peer, task, seed)
                    print(f"{peer} {task.name} seed {seed}: " + (str(out.relative_to(ROOT)) if out else "exists"),
                          flush=True)


if __name__ == "__main__":
    main()
