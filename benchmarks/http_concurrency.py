"""HTTP teacher throughput at 1, 4 and 8 requests in flight, against a real llama.cpp server.

    python benchmarks/http_concurrency.py [--texts 48] [--runs 2]

Starts llama-cpp-python's OpenAI-compatible server with the shipped SmolLM2-135M GGUF (as
tests/test_teacher_http.py does), labels the first N unlabelled banking texts at each
concurrency with no cache, in the order 1, 4, 8, 8, 4, 1, ... so that a change in the load of
a shared machine hits every setting alike, and writes texts/s, the labels agreement with
concurrency 1 and the load average around each run to benchmarks/results/http/http-concurrency.json
(rendered into BENCHMARKS.md by benchmarks/report.py).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

from llama_server import free_port, llama_server  # noqa: E402

from helpers.task import load_task  # noqa: E402
from helpers.teachers.http import OpenAITeacher  # noqa: E402

RESULT = ROOT / "benchmarks" / "results" / "http" / "http-concurrency.json"  # read by report.http_concurrency_table
CONCURRENCY = (1, 4, 8)


def timed_run(task, url: str, texts: list[str], concurrency: int) -> tuple[dict, list[str]]:
    """Label `texts` once at one concurrency (no cache); texts/s and the load average around it."""
    teacher = OpenAITeacher(task, f"openai:smollm2@{url}?concurrency={concurrency}")
    load_before = os.getloadavg()[0]
    start = time.perf_counter()
    labels = teacher.label(texts, progress=False)
    seconds = time.perf_counter() - start
    return {"concurrency": concurrency, "seconds": round(seconds, 2), "texts_per_s": round(len(texts) / seconds, 3),
            "load_before": round(load_before, 2), "load_after": round(os.getloadavg()[0], 2)}, labels.labels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="data-banking-routing")
    parser.add_argument("--texts", type=int, default=48)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # a kill still stops the server (the with-block)
    task = load_task(ROOT / args.task)
    texts = task.unstructured["text"].tolist()[: args.texts]
    order = [c for run in range(args.runs) for c in (CONCURRENCY if run % 2 == 0 else CONCURRENCY[::-1])]
    runs, labels = [], {}
    started = datetime.now(timezone.utc).isoformat(timespec="seconds")
    with llama_server(free_port(), Path("/tmp") / f"http-concurrency-{os.getpid()}.log") as (url, _):
        OpenAITeacher(task, f"openai:smollm2@{url}").predict(texts[:1])  # warm the server's prompt cache
        for concurrency in order:
            record, answer = timed_run(task, url, texts, concurrency)
            labels.setdefault(1, answer)
            record["same_labels_as_concurrency_1"] = sum(a == b for a, b in zip(answer, labels[1]))
            runs.append(record)
            print(json.dumps(record), flush=True)
    RESULT.parent.mkdir(parents=True, exist_ok=True)
    RESULT.write_text(json.dumps({
        "started": started, "task": args.task, "n_texts": len(texts), "cpu_count": os.cpu_count(),
        "teacher_timeout_s": float(os.environ.get("TEACHER_TIMEOUT", 60)),
        "server": "llama-cpp-python server, SmolLM2-135M-Instruct Q4_1 GGUF, n_ctx 4096, default threads",
        "runs": runs}, indent=2))
    print(f"wrote {RESULT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
