"""How much of a long text should the student read? Measured, not guessed.

    python benchmarks/long_texts.py --tasks data-ecommerce data-mental-health --seeds 0 1 2

For each task and seed, student-base (the seed rows alone, as in `helpers.distill`)
is trained and scored on test.csv under several ways of fitting a long text into the
window:

- ``head-128`` / ``head-256``: the first N word pieces (what a plain
  `TextClassificationPipeline` does with truncation);
- ``head+tail-128``: the head-128 model shown the first 96 and the last 30 word
  pieces of each test text (inference only: training it that way too would cost
  another training per run, and 2 CPU cores allow few);
- ``chunks-128``: the head-128 model, its probabilities averaged over every
  126-piece chunk of the test text (inference only).

Student-base is used because it isolates the window: no teacher labels change
between the rows. Results go to benchmarks/results/long-texts/long-texts.json and into
BENCHMARKS.md through `report.py`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np

from helpers.distill import split_validation
from helpers.models import resolve_backbone
from helpers.student import StudentConfig, gold_rows, predict_proba, train_student
from helpers.task import Task, load_task

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "benchmarks" / "results" / "long-texts" / "long-texts.json"  # run.py reads results/*.json
HEAD, TAIL = 96, 30


def head_and_tail(tokenizer, text: str) -> str:
    """The text cut to its first HEAD and last TAIL word pieces (unchanged if it fits)."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if len(ids) <= HEAD + TAIL:
        return text
    return tokenizer.decode(ids[:HEAD]) + " " + tokenizer.decode(ids[-TAIL:])


def chunk_texts(tokenizer, text: str, size: int = 126) -> list[str]:
    """The text as consecutive chunks of `size` word pieces."""
    ids = tokenizer(text, add_special_tokens=False)["input_ids"] or [tokenizer.unk_token_id]
    return [tokenizer.decode(ids[i:i + size]) for i in range(0, len(ids), size)]


def accuracy(probs: np.ndarray, task: Task) -> float:
    predicted = [task.classes[i] for i in probs.argmax(axis=1)]
    return float(np.mean([p == t for p, t in zip(predicted, task.test["label"])]))


def train_base(task: Task, seed: int, max_length: int, transform=None):
    """student-base on the seed rows (validation split as in distill), texts transformed first."""
    train, validation = split_validation(task.train, seed)
    if transform:
        train, validation = (f.assign(text=f["text"].map(transform)) for f in (train, validation))
    config = StudentConfig(seed=seed, max_length=max_length)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        student = train_student(gold_rows(train, task.classes), validation, task.classes, config, Path(tmp),
                                progress=False)
    return student, time.perf_counter() - start


def latency_ms(student, texts: list[str], max_length: int) -> float:
    """Median ms for one text at batch 1 (PyTorch, this machine)."""
    times = []
    for text in texts[:30]:
        start = time.perf_counter()
        predict_proba(student.model, student.tokenizer, [text], max_length)
        times.append((time.perf_counter() - start) * 1000)
    return float(np.median(times))


def measure(task_dir: Path, seed: int) -> list[dict]:
    """Every strategy for one task and seed."""
    task = load_task(task_dir)
    texts = task.test["text"].tolist()
    rows = []

    def record(strategy: str, probs: np.ndarray, seconds: float, ms: float) -> None:
        rows.append({"task": task.name, "seed": seed, "strategy": strategy,
                     "accuracy": round(accuracy(probs, task), 4), "train_seconds": round(seconds, 1),
                     "p50_ms_batch1": round(ms, 2)})

    for max_length in (128, 256):
        student, seconds = train_base(task, seed, max_length)
        probs = predict_proba(student.model, student.tokenizer, texts, max_length)
        record(f"head-{max_length}", probs, seconds, latency_ms(student, texts, max_length))
        if max_length == 128:
            chunks = [chunk_texts(student.tokenizer, t) for t in texts]
            pooled = np.array([predict_proba(student.model, student.tokenizer, c, 128).mean(axis=0)
                               for c in chunks])
            record("chunks-128", pooled, seconds, np.nan)
            cut = [head_and_tail(student.tokenizer, t) for t in texts]
            record("head+tail-128", predict_proba(student.model, student.tokenizer, cut, 128), seconds, np.nan)
    return rows


def token_lengths(task_dir: Path) -> dict:
    """Word pieces per text in the task's files (the student's tokenizer)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(resolve_backbone("minilm")[0])
    task = load_task(task_dir)
    texts = task.train["text"].tolist() + task.test["text"].tolist()
    lengths = np.array([len(tokenizer(t)["input_ids"]) for t in texts])
    return {"task": task.name, "median": int(np.median(lengths)), "p90": int(np.percentile(lengths, 90)),
            "over_128": round(float((lengths > 128).mean()), 3), "over_256": round(float((lengths > 256).mean()), 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", nargs="+", default=["data-ecommerce", "data-mental-health"])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    results = json.loads(OUT.read_text()) if OUT.exists() else {"runs": [], "lengths": []}
    for task_dir in args.tasks:
        results["lengths"] = [r for r in results["lengths"] if r["task"] != load_task(ROOT / task_dir).name]
        results["lengths"].append(token_lengths(ROOT / task_dir))
        for seed in args.seeds:
            new = measure(ROOT / task_dir, seed)
            done = {(r["task"], r["seed"], r["strategy"]) for r in new}
            results["runs"] = [r for r in results["runs"] if (r["task"], r["seed"], r["strategy"]) not in done] + new
            OUT.write_text(json.dumps(results, indent=1) + "\n")
            print(json.dumps(new), flush=True)


if __name__ == "__main__":
    main()
