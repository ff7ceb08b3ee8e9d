"""What distillation buys where the model is served: the teacher next to its students.

The teacher's speed and size are measured once, at training time, where the teacher is loaded
(`teacher_speed`, saved in ``training-logs.json``); the deployment notebook measures the fp32 and
int8 students on the same machine and shows all three in one table (`payoff_table`).
"""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pandas as pd

from helpers.tables import label_key

SPEED_TEXTS = 10  # single-text calls timed for the teacher's p50/p95
SPEED_SECONDS = 10.0  # ...or fewer, once an LLM teacher has spent this long
BATCH_SECONDS = 15.0  # the batch timed for throughput is cut to fit this estimate
RECHECKED = "student int8 (ONNX), PyTorch for near ties"


def teacher_speed(teacher, texts: list[str]) -> dict:
    """The teacher's batch-1 p50/p95 (ms), texts/s on one batch, and size on disk (MB).

    Calls `teacher.predict` directly, and embeds afresh (`embeddings.unremembered`), so no cached
    answer or remembered embedding of texts it has labelled makes it look fast. Bounded for slow
    teachers (an LLM on a CPU answers in seconds): at most `SPEED_TEXTS` single calls or
    `SPEED_SECONDS`, then one batch of up to 32 texts sized to take about `BATCH_SECONDS`.
    """
    from helpers.embeddings import unremembered

    times, started = [], time.perf_counter()
    with unremembered():
        for text in texts[:SPEED_TEXTS]:
            start = time.perf_counter()
            teacher.predict([text])
            times.append(time.perf_counter() - start)
            if time.perf_counter() - started > SPEED_SECONDS:
                break
        size = min(32, len(texts), max(2, int(BATCH_SECONDS / max(np.mean(times), 1e-6))))
        start = time.perf_counter()
        teacher.predict(texts[:size])
        seconds = time.perf_counter() - start
    return {"p50_ms": 1000 * float(np.percentile(times, 50)), "p95_ms": 1000 * float(np.percentile(times, 95)),
            "texts_per_second": size / seconds, "batch": size, "timed_texts": len(times),
            "size_mb": teacher.size_mb}


def agreement(reference: np.ndarray, other: np.ndarray) -> float:
    """Share of texts where two models' probabilities pick the same class."""
    return float((reference.argmax(1) == other.argmax(1)).mean())


def payoff_table(model_dir: str | Path, pipe, onnx, texts: list[str], labels: list[str] | None = None,
                 runs: int = 50) -> pd.DataFrame:
    """Teacher (as measured at training time), fp32 student and int8 student, one row each.

    When ``onnx`` has a PyTorch fallback for near ties, int8 appears twice, alone and with the
    fallback, so the learner sees what the recheck buys (agreement) and costs (p95, texts/s).
    Columns: size on disk, batch-1 p50/p95, texts/s at batch 32, accuracy on ``labels`` when
    given, and agreement with the fp32 student (the model the int8 copy stands in for).
    """
    from helpers.deploy import measure_latency, pipeline_proba
    from helpers.provenance import training_logs

    names = [pipe.model.config.id2label[i] for i in range(pipe.model.config.num_labels)]
    fp32 = pipeline_proba(pipe, texts)
    students = {"student fp32 (PyTorch)": (pipe, Path(model_dir) / "model.safetensors", fp32)}
    if onnx is not None:
        alone = onnx.alone()
        students["student int8 (ONNX)"] = (alone, onnx.path, alone.predict_proba(texts))
        if onnx.fallback:
            students[RECHECKED] = (onnx, onnx.path, onnx.predict_proba(texts))
    rows = {name: {**measure_latency(model, texts, runs=runs, size_path=size), "agreement": agreement(fp32, probs),
                   "accuracy": accuracy([names[i] for i in probs.argmax(1)], labels)}
            for name, (model, size, probs) in students.items()}
    if RECHECKED in rows:  # it ships and loads both the int8 file and PyTorch's weights
        rows[RECHECKED]["size_mb"] += rows["student fp32 (PyTorch)"]["size_mb"]
    logs = training_logs(model_dir) or {}
    if logs.get("teacher_speed"):  # models trained before the teacher was timed have none
        teacher = {**logs["teacher_speed"], "accuracy": logs["evaluation"][0]["accuracy"], "agreement": np.nan}
        rows = {f"teacher ({logs['teacher']}), timed at training": teacher, **rows}
    columns = ["size_mb", "p50_ms", "p95_ms", "texts_per_second", "accuracy", "agreement"]
    return pd.DataFrame(rows).T[columns].astype(float)


def accuracy(predicted: list[str], answers: list[str] | None) -> float:
    """Share right among the texts with an answer, read as training reads labels (case and
    spaces forgiven); NaN when there are no answers."""
    if not answers:
        return np.nan
    pairs = [(label_key(p), label_key(a)) for p, a in zip(predicted, answers) if isinstance(a, str) and a.strip()]
    return float(np.mean([p == a for p, a in pairs])) if pairs else np.nan
