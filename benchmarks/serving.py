"""Serving speed, size and agreement: fp32 PyTorch student against its int8 ONNX copy, side by side.

    python benchmarks/serving.py --model banking-routing=model --model ecommerce=/tmp/ecommerce/model \\
        --runs 3

For every trained student given (``task=model_dir``, the task folder being ``data-<task>``):
the int8 copy is exported beside it if missing, its recheck margin measured on the task's unlabelled texts
as the deployment notebook does (`export`); PyTorch, int8 alone and int8 with PyTorch rechecking
its near ties (what `deploy.load_model` serves) answer the task's whole test.csv (same class as
PyTorch, accuracy, share rechecked), then each run times the three in process (``deploy.measure_latency``)
and at an HTTP client (the server in a process of its own, as users reach it; a kept-alive
``httpx.Client``), on short banking texts and on ~300-word e-commerce / mental-health texts.
``uptime``'s load average is recorded next to every timing: the machine may be shared. Int8 is also
run the way it was before long texts ran alone (`BATCHED`, in process only): the rival of that rule.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving_report import serving_table  # noqa: E402

from helpers import deploy, provenance, quantize  # noqa: E402
from helpers.benchmark import machine  # noqa: E402
from helpers.serve import client_predictor  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "serving" / "serving.json"  # read by serving_report.serving_table
# name -> (deploy.load_model backend, recheck_margin): int8 alone, and int8 whose near ties PyTorch rechecks
# (None: the margin the export measured for that model, as served by default)
BACKENDS = {"pytorch": ("pytorch", 0.0), "onnx": ("onnx", 0.0), "onnx+recheck": ("onnx", None)}
BATCHED = "onnx, long texts batched"  # int8 alone as before quantize.ALONE_ABOVE: every text in batches of 32
FIXED = "onnx+recheck, fixed margin"  # the rival of a margin per model: quantize.RECHECK_MARGIN for every model
SERVER = ("import sys, time\nfrom helpers.serve import serve\n"
          "margin = None if sys.argv[3] == 'None' else float(sys.argv[3])\n"
          "handle = serve(sys.argv[1], backend=sys.argv[2], recheck_margin=margin)\n"
          "print(handle.url, flush=True)\nwhile True: time.sleep(60)\n")


def load() -> float:
    """The 1-minute load average (what ``uptime`` shows first): above the core count, timings suffer."""
    return round(os.getloadavg()[0], 2)


def texts_of(csv: Path, min_words: int = 0, max_words: int = 10**9) -> list[str]:
    """Test texts of a task with a word count in range, read by the deployment rules."""
    texts = deploy.read_texts(csv)["text"].tolist()
    return [t for t in texts if min_words <= len(t.split()) <= max_words]


def long_texts() -> list[str]:
    """Real long texts: e-commerce and mental-health test rows of 250-350 words (~300)."""
    return [t for task in ("data-ecommerce", "data-mental-health")
            for t in texts_of(ROOT / task / "test.csv", 250, 350)]


def agreement(model_dir: Path, test_csv: Path) -> dict:
    """Every backend on the whole test set: how often int8 (alone, then with PyTorch rechecking its
    near ties) picks PyTorch's class, accuracy, and the share of texts the recheck sent to PyTorch."""
    pipe = load_backend(model_dir, "pytorch")  # also the recheck's fallback: the weights are read once
    frames, accuracy, models = {}, {}, {name: load_backend(model_dir, name, pipe) for name in BACKENDS}
    models[BATCHED] = batched(models["onnx"])
    models[FIXED] = deploy.load_model(model_dir, "onnx", recheck_margin=quantize.RECHECK_MARGIN, pipe=pipe)
    with tempfile.TemporaryDirectory() as scratch:
        for name, model in models.items():
            frames[name], accuracy[name] = deploy.predict_csv(model, test_csv, Path(scratch) / "p.csv")
    reference = frames["pytorch"]["prediction"]
    same = {name: float((reference == frame["prediction"]).mean()) for name, frame in frames.items()}
    return {"n_test": len(frames["pytorch"]), "same_class": same["onnx"], "acc_pytorch": accuracy["pytorch"],
            "acc_int8": accuracy["onnx"], "acc_diff_points": 100 * (accuracy["onnx"] - accuracy["pytorch"]),
            "same_class_recheck": same["onnx+recheck"], "acc_recheck": accuracy["onnx+recheck"],
            "share_rechecked": models["onnx+recheck"].rechecked / len(frames["pytorch"]),
            "recheck_margin": models["onnx+recheck"].recheck_margin, "same_class_fixed": same[FIXED],
            "acc_fixed": accuracy[FIXED], "share_rechecked_fixed": models[FIXED].rechecked / len(frames["pytorch"]),
            "same_class_long_batched": same[BATCHED], "acc_long_batched": accuracy[BATCHED]}


def calibration_texts(task: str) -> list[str]:
    """The unlabelled texts the int8 export measures a task's models on, as the notebook reads them."""
    return provenance.first_texts(ROOT / f"data-{task}" / "unstructured.csv", quantize.CALIBRATION_ROWS) or []


def export(model_dir: Path, task: str) -> None:
    """The int8 copy with its recheck margin measured on the task's unlabelled texts, unless the copy
    beside ``model_dir`` already is one."""
    onnx_dir = quantize.onnx_dir_for(model_dir)
    if not quantize.matches(onnx_dir, model_dir) or quantize.recorded_margin(onnx_dir) is None:
        quantize.export_onnx_int8(model_dir, onnx_dir, calibration_texts(task))


def batched(onnx: quantize.OnnxClassifier) -> quantize.OnnxClassifier:
    """The rival of the rule that runs long texts alone: the same int8 session batching every text."""
    rival = onnx.alone()
    rival.alone_above = 10**9
    return rival


def load_backend(model_dir: Path, name: str, pipe=None):
    """One of `BACKENDS` by name, as `deploy.load_model` serves it (reusing `pipe`, PyTorch, if given)."""
    backend, margin = BACKENDS[name]
    return deploy.load_model(model_dir, backend, recheck_margin=margin, pipe=pipe)


def start_server(model_dir: Path, backend: str) -> tuple[subprocess.Popen, str]:
    """`helpers.serve.serve` in a fresh process; returns it and its URL once it answers."""
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(model_dir), *map(str, BACKENDS[backend])], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                            env=os.environ | {"PYTHONPATH": str(ROOT)})
    url = proc.stdout.readline().strip()
    if not url.startswith("http"):
        proc.kill()
        raise RuntimeError(f"the {backend} server for {model_dir} did not start")
    return proc, url


def time_backend(model_dir: Path, backend: str, sets: dict[str, list[str]], runs: int) -> list[dict]:
    """In process and over HTTP, for each text set: one row per (where, texts)."""
    rows, model = [], load_backend(model_dir, backend)
    size = model_dir / "model.safetensors" if backend == "pytorch" else model.path
    variants = {backend: model} | ({BATCHED: batched(model)} if backend == "onnx" else {})
    for name, texts in sets.items():
        for label, variant in variants.items():  # one text alone is answered alike: BATCHED is timed here only
            before = load()
            stats = deploy.measure_latency(variant, texts, runs=runs, size_path=size)
            rows.append({"backend": label, "where": "in process", "texts": name, **stats,
                         "load_before": before, "load_after": load()})
    del model, variants
    proc, url = start_server(model_dir, backend)
    try:
        for name, texts in sets.items():
            before = load()
            with httpx.Client(base_url=url, timeout=60) as client:
                stats = deploy.measure_latency(client_predictor(client), texts, runs=runs)
            rows.append({"backend": backend, "where": "http", "texts": name, **stats,
                         "load_before": before, "load_after": load()})
    finally:
        proc.kill()
        proc.wait()
    return rows


def batching_gain(onnx: quantize.OnnxClassifier, texts: list[str], pieces=(16, 32, 64, 128, 256)) -> list[dict]:
    """Int8 texts/s at batch 1, 4 and 32 with every text cut to the same length (no padding): how much
    batching buys at each length, the measurement behind `quantize.ALONE_ABOVE`. Best of 3 passes."""
    rows = []
    for length in pieces:
        encodings = onnx.tokenizer.encode_batch(texts)
        for encoding in encodings:
            encoding.truncate(length)
        row = {"pieces": length, "load_before": load()}
        for size in (1, 4, 32):
            best = 0.0
            for _ in range(3):
                start = time.perf_counter()
                for first in range(0, len(encodings), size):
                    onnx.session.run(None, onnx.feed(encodings[first:first + size]))
                best = max(best, len(encodings) / (time.perf_counter() - start))
            row[f"batch{size}_texts_per_s"] = round(best, 1)
        rows.append(row | {"gain_at_32": round(row["batch32_texts_per_s"] / row["batch1_texts_per_s"], 2)})
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", action="append", required=True, help="task=model_dir, e.g. ecommerce=model")
    parser.add_argument("--runs", type=int, default=3,
                        help="timing runs per backend (spread between them); 0: agreement only, timings kept")
    parser.add_argument("--requests", type=int, default=100, help="one-text requests per timing")
    parser.add_argument("--json", type=Path, default=RESULT)
    args = parser.parse_args(argv)
    sets = {"short (banking)": texts_of(ROOT / "data-banking-routing" / "test.csv"), "~300 words": long_texts()}
    record = {"cpu_count": os.cpu_count(), "machine": machine(),
              "started": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
              "n_texts": {k: len(v) for k, v in sets.items()}, "tasks": {}, "timings": []}
    if args.json.exists():  # a later call adds tasks (agreement) or replaces the timings, keeping the rest
        previous = json.loads(args.json.read_text())
        record["tasks"] = previous["tasks"]
        if args.runs == 0:
            record = previous
    for spec in args.model:
        task, _, folder = spec.partition("=")
        model_dir = Path(folder).resolve()
        export(model_dir, task)
        record["tasks"][task] = agreement(model_dir, ROOT / f"data-{task}" / "test.csv")
        print(task, record["tasks"][task], flush=True)
    first = Path(args.model[0].partition("=")[2]).resolve()
    if args.runs:
        record["timed_model"] = args.model[0]
        record["batching"] = batching_gain(load_backend(first, "onnx"), sets["~300 words"])
        print(record["batching"], flush=True)
    for run in range(args.runs):
        for backend in BACKENDS:
            for row in time_backend(first, backend, sets, args.requests):
                record["timings"].append({"run": run, **row})
                print(row, flush=True)
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(record, indent=1) + "\n")
    print(serving_table(ROOT, args.json.name) if args.json.parent.resolve() == RESULT.parent else args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
