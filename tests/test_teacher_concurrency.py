"""Several requests in flight to a teacher server: the same answers, each cached as it arrives.

The pool is tested on its own with a function that sleeps (fast); the teacher against a real
llama.cpp server. Speed is measured in benchmarks/http_concurrency.py, not asserted here.
"""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import make_task
from llama_server import free_port, llama_server

from helpers.task import Task, load_task
from helpers.teachers import make_teacher
from helpers.teachers.base import cache_spec
from helpers.teachers.http import OpenAITeacher, RetryPolicy, TeacherUnavailable
from helpers.teachers.pool import answer_concurrently

TEXTS = [f"{what} number {i}" for i in range(4) for what in
         ("my parcel has not arrived", "I want a refund for order", "the courier lost box")]


@pytest.fixture(scope="module")
def task(tmp_path_factory) -> Task:
    return load_task(make_task(tmp_path_factory.mktemp("concurrency") / "data-shop"))


def test_the_pool_keeps_at_most_n_in_flight_and_hands_answers_over_as_they_arrive():
    lock, running, peak = threading.Lock(), [0], [0]

    def ask(text: str) -> str:
        with lock:
            running[0] += 1
            peak[0] = max(peak[0], running[0])
        time.sleep(0.05 if text == "slow" else 0.01)
        with lock:
            running[0] -= 1
        return text.upper()

    texts = ["slow"] + [f"t{i}" for i in range(11)]
    pairs = list(answer_concurrently(ask, texts, concurrency=3))
    assert sorted(pairs) == sorted((i, t.upper()) for i, t in enumerate(texts))
    assert peak[0] == 3 and pairs[0][0] != 0  # the slow first text did not hold the others back


def test_after_a_failure_answers_in_flight_are_still_handed_over_and_nothing_new_is_sent():
    started: list[str] = []

    def ask(text: str) -> str:
        started.append(text)
        if text == "bad":
            raise TeacherUnavailable("server gone")
        time.sleep(0.1)
        return text

    got = []
    with pytest.raises(TeacherUnavailable, match="server gone"):
        for pair in answer_concurrently(ask, ["bad", "a", "b"] + [f"late{i}" for i in range(20)], concurrency=3):
            got.append(pair)
    assert {(1, "a"), (2, "b")} <= set(got)  # in flight when "bad" failed
    assert sorted(text for _, text in got) == sorted(set(started) - {"bad"})  # every request sent was kept
    assert len(started) < 10  # the queue was cancelled, not worked through


def test_concurrency_comes_from_the_spec_and_does_not_change_the_cache_key(task):
    eight = make_teacher("openai:m@http://127.0.0.1:9/v1?concurrency=8", task)
    plain = make_teacher("openai:m@http://127.0.0.1:9/v1", task)
    assert (eight.concurrency, plain.concurrency) == (8, 4) and eight.id == plain.id
    assert cache_spec("openai:m@http://h/v1?concurrency=2+seed") == "openai:m@http://h/v1+seed"


def cached(cache: Path) -> dict[str, list[float]]:
    lines = [json.loads(line) for path in cache.glob("teacher-*.jsonl") for line in path.read_text().splitlines()]
    return {item["key"]: item["probs"] for item in lines}


def test_concurrent_requests_give_the_same_labels_as_one_at_a_time(llama_url, task):
    one = OpenAITeacher(task, f"openai:smollm2@{llama_url}?concurrency=1").label(TEXTS, progress=False)
    eight = OpenAITeacher(task, f"openai:smollm2@{llama_url}?concurrency=8").label(TEXTS, progress=False)
    assert eight.labels == one.labels and (eight.valid == one.valid).all()
    np.testing.assert_allclose(eight.probs, one.probs, atol=1e-6)


def record_answers(teacher: OpenAITeacher) -> list[str]:
    """Texts whose answer reached the client, in the order they arrived."""
    seen, answer = [], teacher.answer

    def recording(text: str):
        result = answer(text)
        seen.append(text)
        return result

    teacher.answer = recording
    return seen


@pytest.mark.slow
def test_a_crash_at_concurrency_4_keeps_every_answer_received_and_a_rerun_asks_only_the_rest(task, tmp_path):
    port, cache = free_port(), tmp_path / "cache"
    spec = f"openai:smollm2@http://127.0.0.1:{port}/v1"
    with llama_server(port, tmp_path / "first.log") as (_, proc):
        teacher = OpenAITeacher(task, spec + "?concurrency=4", retry=RetryPolicy(attempts=2, base=0.1, cap=0.2))
        received = record_answers(teacher)
        killer = threading.Thread(target=lambda: (wait_until(lambda: len(received) >= 3), proc.kill()))
        killer.start()
        with pytest.raises(TeacherUnavailable):
            teacher.label(TEXTS, cache_dir=cache, progress=False)
        killer.join()
    first = cached(cache)
    assert 3 <= len(received) < len(TEXTS) and len(first) == len(set(received))  # none lost, none extra
    with llama_server(port, tmp_path / "second.log"):
        again = OpenAITeacher(task, spec + "?concurrency=1")
        asked = record_answers(again)
        resumed = again.label(TEXTS, cache_dir=cache, progress=False)
        fresh = OpenAITeacher(task, spec + "?concurrency=1").label(TEXTS, progress=False)
    assert sorted(asked) == sorted(set(TEXTS) - set(received))  # the cache is shared across concurrencies
    assert resumed.labels == fresh.labels
    np.testing.assert_allclose(resumed.probs, fresh.probs, atol=1e-5)  # the cache rounds to 6 decimals


def wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not condition():
        time.sleep(0.02)
