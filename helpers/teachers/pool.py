"""Requests to a teacher server: bounded retries, and several in flight at once.

A serving engine (vLLM, SGLang, llama.cpp server with slots) batches the requests it
has in flight, so labelling 100k texts runs at the server's throughput only if we keep
several open. Answers are handed back as they arrive, not in order, so the caller can
write each to the cache at once: a crash loses nothing that was answered.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass
from typing import TypeVar

Answer = TypeVar("Answer")
QUEUED_PER_WORKER = 2  # futures waiting per thread: enough to keep threads busy, few to cancel on a crash


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long to wait on 429/5xx/connection errors (bounded on purpose).

    Args:
        attempts: Tries per request in total (1 = no retry).
        base: First wait in seconds; doubled after each failure.
        cap: Longest single wait, also the cap on a server's Retry-After.
    """

    attempts: int = 5
    base: float = 0.5
    cap: float = 8.0

    def delay(self, failures: int, retry_after: float | None = None) -> float:
        """Seconds to wait after the `failures`-th failure (1-based)."""
        backoff = self.base * 2 ** (failures - 1)
        return min(self.cap, max(backoff, retry_after or 0.0))


def retry_after(exc: Exception) -> float | None:
    """The server's Retry-After in seconds, if it sent a numeric one."""
    response = getattr(exc, "response", None)
    try:
        return float(response.headers.get("retry-after")) if response is not None else None
    except (TypeError, ValueError):
        return None


def answer_concurrently(ask: Callable[[str], Answer], texts: list[str], concurrency: int
                        ) -> Iterator[tuple[int, Answer]]:
    """``(index, ask(text))`` for every text, in the order answers arrive, `concurrency` at a time.

    Only a few texts are queued ahead, so 100k texts are not 100k futures. When one
    request fails for good, nothing new is sent; the requests in flight are waited
    for and their answers still handed back, then the first error is raised.
    """
    texts_left = iter(enumerate(texts))
    failures: list[BaseException] = []
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        pending: dict[Future, int] = {}

        def top_up() -> None:
            while not failures and len(pending) < concurrency * QUEUED_PER_WORKER:
                item = next(texts_left, None)
                if item is None:
                    return
                pending[pool.submit(ask, item[1])] = item[0]

        top_up()
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    index = pending.pop(future)
                    if not future.cancelled() and future.exception() is not None:
                        failures.append(future.exception())
                        cancel_queued(pending)
                    elif not future.cancelled():
                        yield index, future.result()
                pending = {f: i for f, i in pending.items() if not f.cancelled()}
                top_up()
        finally:
            cancel_queued(pending)  # Ctrl-C or a caller that stopped reading: send nothing more
    if failures:
        raise failures[0]


def cancel_queued(pending: dict[Future, int]) -> None:
    """Cancel the futures no thread has started (their texts are never sent)."""
    for future in pending:
        future.cancel()
