"""Deploy a trained student: unpack it (`helpers.archive`), predict, time it.

Everything runs on CPU; HTTP serving lives in `helpers.serve`, ONNX int8 in
`helpers.quantize`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer, TextClassificationPipeline

from helpers.archive import folder_size_mb
from helpers.limits import MAX_CSV_BYTES, saved_window
from helpers.models import set_threads
from helpers.problems import Problems, shorten
from helpers.tables import decode_bytes, label_key, read_bytes, read_records, records_to_frame

TEXT_COLUMNS = ("question", "context", "text")
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
Predictor = Callable[[list[str]], np.ndarray]


def load_pipeline(model_dir: str | Path) -> TextClassificationPipeline:
    """A CPU text-classification pipeline returning every class's probability (top_k=None)."""
    set_threads()
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir)).eval()
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    return TextClassificationPipeline(model=model, tokenizer=tokenizer, top_k=None, device=-1, truncation=True,
                                      max_length=saved_window(tokenizer, model.config.max_position_embeddings))


def pipeline_proba(pipe: TextClassificationPipeline, texts: list[str], batch_size: int = 32) -> np.ndarray:
    """Probabilities as an array in the model's label order (the pipeline sorts by score)."""
    labels = [pipe.model.config.id2label[i] for i in range(pipe.model.config.num_labels)]
    results = pipe(list(texts), batch_size=batch_size) if texts else []
    return np.array([[{r["label"]: r["score"] for r in row}[label] for label in labels]
                     for row in results]).reshape(len(texts), len(labels))


def predict_one(pipe, text: str) -> pd.DataFrame:
    """Every class with its probability for one text, most likely first (pipeline or ONNX)."""
    rows = pipe([text])[0]
    return pd.DataFrame(rows).rename(columns={"score": "probability"}) \
        .sort_values("probability", ascending=False, ignore_index=True)


class CsvError(ValueError):
    """A CSV given for prediction that cannot be used; the message lists every problem."""


def read_texts(csv_path: Path) -> pd.DataFrame:
    """Texts (``question``, ``context`` or ``text`` column) and optional ``answer`` labels,
    read with the training data's rules: a regular file within the size limit, BOM,
    semicolons, UTF-16, broken rows reported with their spreadsheet row."""
    problems = Problems()
    raw = read_bytes(csv_path, MAX_CSV_BYTES, problems)
    text = None if raw is None else decode_bytes(raw, csv_path.name, problems)
    found = None if text is None else read_records(text, TEXT_COLUMNS, csv_path.name, problems)
    records, delimiter = found or ([], ",")
    header = [cell.strip().lower() for cell in records[0]] if records else []
    column = next((c for c in TEXT_COLUMNS if c in header), None)
    if found is not None and column is None:
        problems.error(csv_path.name, f"needs a column named one of {', '.join(TEXT_COLUMNS)}; found "
                       f"{', '.join(shorten(h, 40) for h in header[:10] if h) or 'none'}",
                       "name the column of texts 'question' (and the labels 'answer')", row=1)
    wanted = (column, "answer") if "answer" in header else (column,)
    frame = None if column is None else records_to_frame(records, wanted, csv_path.name, problems, delimiter)
    if problems.errors or frame is None:
        raise CsvError(f"{csv_path} cannot be used:\n" + "\n".join(f"  - {p}" for p in problems.summarised()
                                                                  if p.severity == "error"))
    return frame.rename(columns={column: "text"})


def canonical_answers(frame: pd.DataFrame, labels: list[str], csv_path: Path) -> pd.Series:
    """Answers mapped to the model's class names as training reads them (case, spaces and
    Unicode form forgiven); an answer the model does not know is an error, not a miss."""
    lookup = {label_key(label): label for label in labels}
    mapped = frame["answer"].map(lambda a: lookup.get(label_key(a)) if a else "")
    unknown = frame[mapped.isna()]
    if len(unknown):
        where = ", ".join(f"row {r}: {shorten(a, 40)!r}" for r, a in zip(unknown["row"].head(3), unknown["answer"]))
        hint = (" None of them is: was this CSV written for another task? Use the test.csv of the task "
                "the model was trained on (training-logs.json names it)." if len(unknown) == len(frame) else "")
        raise CsvError(f"{csv_path}, column 'answer': {len(unknown)} row(s) have answers that are not this "
                       f"model's classes ({where}).{hint} The model's classes: "
                       f"{', '.join(shorten(c, 40) for c in labels[:12])}{', ...' if len(labels) > 12 else ''}")
    return mapped


def escape_formula(value: object) -> object:
    """Prefix ``'`` to text starting with = + - @ (or tab/CR) so a spreadsheet opening the
    predictions file shows it as text instead of running it as a formula (CSV injection)."""
    return "'" + value if isinstance(value, str) and value.startswith(FORMULA_PREFIXES) else value


def predict_csv(pipe, csv_path: str | Path,
                out_path: str | Path | None = None) -> tuple[pd.DataFrame, float | None]:
    """Predict every row of a CSV with a pipeline or an `OnnxClassifier`; write
    ``<name>-predictions.csv`` beside it.

    The returned frame holds the raw texts; the written file has formula-like cells
    escaped (see `escape_formula`). The input file is never overwritten. Accuracy is
    returned when an ``answer`` column has labels, else None.
    """
    csv_path = Path(csv_path).resolve()
    out = Path(out_path).resolve() if out_path else csv_path.with_name(f"{csv_path.stem}-predictions.csv")
    if out == csv_path or (out.exists() and out.samefile(csv_path)):
        raise ValueError(f"refusing to write predictions over the input file {csv_path}")
    frame = read_texts(csv_path)
    labels = np.array(class_names(pipe))
    answers = canonical_answers(frame, labels.tolist(), csv_path) if "answer" in frame else None
    probs = as_predictor(pipe)(frame["text"].tolist())
    frame = frame.drop(columns="row")
    frame["prediction"] = labels[probs.argmax(1)]
    frame["probability"] = probs.max(1).round(4)
    accuracy = None
    if answers is not None and (answers != "").any():
        labelled = (answers != "").to_numpy()
        frame["correct"] = (frame["prediction"] == answers.to_numpy()).where(labelled)
        accuracy = float((frame["prediction"].to_numpy() == answers.to_numpy())[labelled].mean())
    partial = out.with_name(out.name + ".partial")
    frame.map(escape_formula).to_csv(partial, index=False)
    partial.replace(out)
    return frame, accuracy


def load_model(model_dir: str | Path, backend: str = "auto", recheck_margin: float | None = None,
               pipe: TextClassificationPipeline | None = None):
    """The model to serve: the int8 ONNX copy or the PyTorch pipeline, with the same API.

    ``backend="auto"`` takes ``model-onnx/`` beside ``model_dir`` when it was made from these very
    weights (its ``source.json`` says so), because it answers the same several times faster;
    ``"onnx"`` insists on it, ``"pytorch"`` never uses it. When the int8 copy matches, the PyTorch
    model is loaded too and rechecks int8's near ties (gap under ``recheck_margin``, by default the
    margin the export measured for this copy, else `quantize.RECHECK_MARGIN`), so the classes served
    are fp32's; ``recheck_margin=0`` serves int8 alone and needs only ``model-onnx/`` in memory.
    ``pipe``, a pipeline already loaded from ``model_dir`` (the deployment notebook has one), is used
    instead of loading the weights again.
    """
    from helpers import quantize

    onnx_dir = quantize.onnx_dir_for(model_dir)
    if backend not in ("auto", "onnx", "pytorch"):
        raise ValueError(f"backend must be 'auto', 'onnx' or 'pytorch', not {backend!r}")
    if pipe is not None and Path(pipe.model.name_or_path).resolve() != Path(model_dir).resolve():
        raise ValueError(f"pipe was loaded from {pipe.model.name_or_path}, not from {model_dir}: "
                         "pass the pipeline of the model being served, or none")

    def pytorch() -> TextClassificationPipeline:
        return pipe if pipe is not None else load_pipeline(model_dir)

    same = backend != "pytorch" and quantize.matches(onnx_dir, model_dir)
    recorded = quantize.recorded_margin(onnx_dir) if same else None
    margin = next(m for m in (recheck_margin, recorded, quantize.RECHECK_MARGIN) if m is not None)
    if backend == "onnx" or same:
        fallback = as_predictor(pytorch()) if same and margin > 0 else None
        return quantize.OnnxClassifier(onnx_dir, fallback=fallback, recheck_margin=margin)
    return pytorch()


def class_names(model) -> list[str]:
    """The class names in the model's output order, for a pipeline or an `OnnxClassifier`."""
    if isinstance(model, TextClassificationPipeline):
        return [model.model.config.id2label[i] for i in range(model.model.config.num_labels)]
    return list(model.labels)


def as_predictor(target, tokenizer=None) -> Predictor:
    """Turn a pipeline, an `OnnxClassifier`, a torch model (+ tokenizer) or a texts->probabilities
    callable into a texts->probabilities callable."""
    if isinstance(target, TextClassificationPipeline):
        return lambda texts: pipeline_proba(target, texts)
    if hasattr(target, "predict_proba"):
        return target.predict_proba
    if isinstance(target, torch.nn.Module):
        from helpers.student import predict_proba
        window = saved_window(tokenizer, target.config.max_position_embeddings)
        return lambda texts: predict_proba(target, tokenizer, texts, window, batch_size=32)
    if callable(target):
        return target
    raise TypeError(f"cannot predict with {type(target).__name__}")


def measure_latency(target, texts: list[str], tokenizer=None, runs: int = 50, warmup: int = 5,
                    batch_size: int = 32, size_path: str | Path | None = None) -> dict:
    """Batch-1 p50/p95 latency (ms), batch-32 throughput (texts/s) and size on disk (MB).

    Warm-up runs come first so one-off costs (allocations, lazy init) are not timed.
    The size is taken from ``size_path``, else from the folder the model was loaded from.
    """
    if not texts:
        raise ValueError("measure_latency needs at least one text")
    predict = as_predictor(target, tokenizer)
    for i in range(warmup):
        predict([texts[i % len(texts)]])
    times = []
    for i in range(runs):
        start = time.perf_counter()
        predict([texts[i % len(texts)]])
        times.append((time.perf_counter() - start) * 1000)
    batch, rounds = [texts[i % len(texts)] for i in range(batch_size)], max(1, runs // 10)
    predict(batch)
    start = time.perf_counter()
    for _ in range(rounds):
        predict(batch)
    seconds = time.perf_counter() - start
    size_path = size_path or getattr(target, "path", None) or \
        getattr(getattr(target, "model", target), "name_or_path", None)
    return {"p50_ms": float(np.percentile(times, 50)), "p95_ms": float(np.percentile(times, 95)),
            "texts_per_second": batch_size * rounds / seconds,
            "size_mb": folder_size_mb(size_path) if size_path and Path(size_path).exists() else None}
