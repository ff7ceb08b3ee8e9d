"""How much of a long text should the student read? Measured, not guessed.

    python benchmarks/long_texts.py --tasks data-ecommerce data-mental-health --seeds 0 1 2

For each task and seed, student-base (the seed rows alone, as in `helpers.distill`)
is trained and scored on test.csv under several ways of fitting a long text into the
window:

- ``head-128`` / ``head-256``: the first N word pieces (what a plain
  `TextClassificationPipeline` does with truncation);
- ``head+tail-128``: the head-128 model shown the first 96 and the last 30 word
  pieces of each test text (inference only);
- ``head+tail-128-trained``: a student trained on its seed rows cut that way too,
  and tested on test texts cut the same way;
- ``chunks-128``: the head-128 model, its probabilities averaged over every
  126-piece chunk of the test text (inference only);
- ``head-256-grouped``: head-256 trained on batches of similar length
  (`StudentConfig.group_by_length`), which pads less.

Student-base is used because it isolates the window: no teacher labels change
between the rows. With ``--embedder`` it also scores the seed classifier (the default
teacher) on embeddings of the first 256 pieces, as today, against the length-weighted
mean of the embeddings of every 254-piece chunk (deterministic: no seeds).
Results go to benchmarks/results/long-texts/long-texts.json and into BENCHMARKS.md
through `report.py`.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from functools import partial
from pathlib import Path

import numpy as np
from transformers import AutoTokenizer

from helpers.guard import split_validation
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


def train_base(task: Task, seed: int, max_length: int, transform=None, grouped: bool = False):
    """student-base on the seed rows (validation split as in distill), texts transformed first;
    `grouped`: batches of similar length (`StudentConfig.group_by_length`)."""
    train, validation = split_validation(task.train, seed)
    if transform:
        train, validation = (f.assign(text=f["text"].map(transform)) for f in (train, validation))
    config = StudentConfig(seed=seed, max_length=max_length, group_by_length=grouped)
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        student = train_student(gold_rows(train, task.classes), validation, task.classes, config, Path(tmp),
                                progress=False)
    return student, time.perf_counter() - start


def latency_ms(student, texts: list[str], max_length: int, transform=None) -> dict:
    """Batch-1 p50/p95 (ms, PyTorch, this machine) over the test texts, apart for those that fit the
    128-piece window and those longer: a long text costs a full window, a short one far less.
    `transform` (a cut made before the model reads the text) is timed with it."""
    times = {"short": [], "long": []}
    for text in texts:
        size = "long" if len(student.tokenizer(text, add_special_tokens=False)["input_ids"]) > 126 else "short"
        start = time.perf_counter()
        predict_proba(student.model, student.tokenizer, [transform(text) if transform else text], max_length)
        times[size].append((time.perf_counter() - start) * 1000)
    return {f"{stat}_ms_{size}": round(float(np.percentile(values, q)), 2)
            for size, values in times.items() if values for stat, q in (("p50", 50), ("p95", 95))}


STRATEGIES = ("head-128", "chunks-128", "head+tail-128", "head-256", "head+tail-128-trained", "head-256-grouped")


def measure(task_dir: Path, seed: int, strategies: tuple[str, ...] = STRATEGIES) -> list[dict]:
    """The chosen strategies for one task and seed (each trained model once)."""
    task = load_task(task_dir)
    texts = task.test["text"].tolist()
    rows = []

    def record(strategy: str, probs: np.ndarray, seconds: float, latency: dict | None = None) -> None:
        if strategy in strategies:
            rows.append({"task": task.name, "seed": seed, "strategy": strategy,
                         "accuracy": round(accuracy(probs, task), 4), "train_seconds": round(seconds, 1),
                         **(latency or {})})

    if set(strategies) & {"head-128", "chunks-128", "head+tail-128"}:
        student, seconds = train_base(task, seed, 128)
        record("head-128", predict_proba(student.model, student.tokenizer, texts, 128), seconds,
               latency_ms(student, texts, 128))
        pooled = np.array([predict_proba(student.model, student.tokenizer, chunk_texts(student.tokenizer, t), 128)
                           .mean(axis=0) for t in texts])
        record("chunks-128", pooled, seconds)
        cut = [head_and_tail(student.tokenizer, t) for t in texts]
        record("head+tail-128", predict_proba(student.model, student.tokenizer, cut, 128), seconds)
    if "head-256" in strategies:
        student, seconds = train_base(task, seed, 256)
        record("head-256", predict_proba(student.model, student.tokenizer, texts, 256), seconds,
               latency_ms(student, texts, 256))
    if "head-256-grouped" in strategies:
        student, seconds = train_base(task, seed, 256, grouped=True)
        record("head-256-grouped", predict_proba(student.model, student.tokenizer, texts, 256), seconds,
               latency_ms(student, texts, 256))
    if "head+tail-128-trained" in strategies:
        cut_text = partial(head_and_tail, AutoTokenizer.from_pretrained(resolve_backbone("minilm")[0]))
        student, seconds = train_base(task, seed, 128, cut_text)
        cut = [cut_text(t) for t in texts]
        record("head+tail-128-trained", predict_proba(student.model, student.tokenizer, cut, 128), seconds,
               latency_ms(student, texts, 128, cut_text))
    return rows


def chunk_embeddings(texts: list[str], size: int = 254) -> np.ndarray:
    """Mean-pooled MiniLM embeddings of every `size`-piece chunk of each text, averaged by chunk length."""
    import torch

    from helpers.embeddings import load_encoder

    tokenizer, model = load_encoder()
    vectors = []
    with torch.inference_mode():
        for text in texts:
            ids = tokenizer(text, add_special_tokens=False, verbose=False)["input_ids"] or [tokenizer.unk_token_id]
            chunks = [ids[i:i + size] for i in range(0, len(ids), size)]
            pooled = [model(input_ids=torch.tensor([[tokenizer.cls_token_id, *c, tokenizer.sep_token_id]]))
                      .last_hidden_state[0].mean(0) * len(c) for c in chunks]
            vectors.append(torch.nn.functional.normalize(torch.stack(pooled).sum(0), dim=-1).numpy())
    return np.stack(vectors)


def embedder_accuracy(task_dir: Path) -> list[dict]:
    """The seed classifier's test accuracy with the embedder reading the first 256 pieces or every chunk."""
    from helpers.embeddings import embed
    from helpers.teachers.seed import fit_classifier

    task = load_task(task_dir)
    labels = [task.classes.index(c) for c in task.train["label"]]
    truth = np.array([task.classes.index(c) for c in task.test["label"]])
    rows = []
    for strategy, vectors in (("embedder head-256", embed), ("embedder chunks-256", chunk_embeddings)):
        model = fit_classifier(vectors(task.train["text"].tolist()), labels, len(task.classes))
        predicted = model.predict(vectors(task.test["text"].tolist()))
        rows.append({"task": task.name, "strategy": strategy, "seed_classifier_accuracy":
                     round(float((predicted == truth).mean()), 4)})
    return rows


def token_lengths(task_dir: Path) -> dict:
    """Word pieces per text in the task's files (the student's tokenizer)."""
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
    parser.add_argument("--strategies", nargs="+", default=list(STRATEGIES), choices=STRATEGIES,
                        help="measure only these (default: all)")
    parser.add_argument("--embedder", action="store_true",
                        help="only score the seed classifier on head-256 against chunk-averaged embeddings")
    args = parser.parse_args()
    results = json.loads(OUT.read_text()) if OUT.exists() else {"runs": [], "lengths": []}
    if args.embedder:
        names = {load_task(ROOT / t).name for t in args.tasks}
        results["embedder"] = [r for r in results.get("embedder", []) if r["task"] not in names] + [
            row for t in args.tasks for row in embedder_accuracy(ROOT / t)]
        OUT.write_text(json.dumps(results, indent=1) + "\n")
        print(json.dumps(results["embedder"]))
        return
    for task_dir in args.tasks:
        results["lengths"] = [r for r in results["lengths"] if r["task"] != load_task(ROOT / task_dir).name]
        results["lengths"].append(token_lengths(ROOT / task_dir))
        for seed in args.seeds:
            new = measure(ROOT / task_dir, seed, tuple(args.strategies))
            done = {(r["task"], r["seed"], r["strategy"]) for r in new}
            results["runs"] = [r for r in results["runs"] if (r["task"], r["seed"], r["strategy"]) not in done] + new
            OUT.write_text(json.dumps(results, indent=1) + "\n")
            print(json.dumps(new), flush=True)


if __name__ == "__main__":
    main()
