"""A teacher behind an OpenAI-compatible HTTP server (vLLM, Ollama, llama.cpp server, OpenAI).

Spec: ``openai:MODEL@URL``, e.g. ``openai:smollm2@http://127.0.0.1:8080/v1``. The API
key comes from ``$OPENAI_API_KEY`` (local servers need none); it is never printed,
logged or put into an error message.

A remote model is sampled, not scored, so its reply has to be mapped to a class:
- The reply is parsed strictly to one class name; anything else gets a reminder
  and a retry, then the text is marked invalid (uniform probabilities). The reply
  is only ever compared to class names, so a text saying "answer PWNED" can at
  worst make its own row invalid.
- Where the server returns ``top_logprobs``, the first answer token's alternatives
  that begin a class name become the distribution; otherwise the parsed class gets
  0.9 and the rest share 0.1. Servers that reject logprobs are asked without them.
- The seed examples are sent as earlier user/assistant turns, not inside the
  system prompt: SmolLM2-135M answered with a class name 4 times out of 4 that way,
  and 0 out of 4 with the examples in the system prompt.

Texts are sent only as the user message. Requests run in a small thread pool;
429, 5xx and connection errors are retried with bounded exponential backoff.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import openai

from helpers.limits import TEACHER_TEXT_WORDS
from helpers.task import Task
from helpers.teachers.base import Teacher, fit_words, uniform
from helpers.teachers.local import pick_examples, system_prompt

log = logging.getLogger(__name__)

DUMMY_KEY = "not-needed"  # local servers ignore the key, but the client insists on one
SPEC = re.compile(r"^(?P<model>\S+?)@(?P<url>https?://\S+)$")
TOP_LOGPROBS = 20
PEAK = 0.9  # probability of the parsed class when no logprobs are available
TRANSIENT = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)
ANSWER_PREFIX = re.compile(r"^(class|label|answer|category)\s*[:=-]\s*", re.IGNORECASE)


DEFAULT_TIMEOUT = 60.0  # seconds per request; $TEACHER_TIMEOUT overrides it


class TeacherUnavailable(RuntimeError):
    """The teacher's server cannot be reached or keeps refusing: the run cannot go on."""


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


def parse_spec(rest: str) -> tuple[str, str]:
    """Model and base URL from the part of the spec after ``openai:``."""
    match = SPEC.match(rest.strip())
    if not match:
        raise ValueError(f"bad teacher spec 'openai:{rest}': use openai:MODEL@URL, "
                         "e.g. openai:smollm2@http://127.0.0.1:8080/v1")
    return match["model"], match["url"].rstrip("/")


def public_url(url: str) -> str:
    """The URL without any user:password part, safe to show."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def approx_tokenizer(text: str) -> dict[str, list[int]]:
    """Token count estimate (~4 characters a token) for `pick_examples`: no tokenizer over HTTP."""
    return {"input_ids": [0] * (len(text) // 4 + 1)}


def norm(text: str) -> str:
    """Comparison key: case, underscores, dashes and spacing do not matter."""
    return " ".join(re.sub(r"[_\-\s]+", " ", text).lower().split())


def clean_reply(reply: str) -> str:
    """The reply without surrounding quotes, markup, punctuation or a 'Class:' prefix."""
    text = reply.strip().strip("\"'`*.:;,!()[]{}<> \n\t")
    return ANSWER_PREFIX.sub("", text).strip("\"'`*.:;,!()[]{}<> \n\t")


def parse_class(reply: str, classes: list[str]) -> str | None:
    """The one class a reply names, or None.

    Exact, then case/spacing-insensitive, then "starts with a class name" (longest
    wins) provided no other class is named later: a reply naming two classes is
    ambiguous and counts as no answer.
    """
    text = clean_reply(reply)
    if text in classes:
        return text
    key = norm(text)
    by_key = {norm(c): c for c in classes}
    if key in by_key:
        return by_key[key]
    starts = [c for k, c in by_key.items() if re.match(re.escape(k) + r"(?![a-z0-9])", key)]
    if not starts:
        return None
    best = max(starts, key=len)
    rest = key[len(norm(best)):]
    named = [c for k, c in by_key.items() if re.search(rf"(?<![a-z0-9]){re.escape(k)}(?![a-z0-9])", rest)]
    return None if any(c != best for c in named) else best


def smoothed(index: int, n_classes: int, peak: float = PEAK) -> np.ndarray:
    """Mostly the parsed class: a one-hot label would claim certainty nobody measured."""
    probs = np.full(n_classes, (1.0 - peak) / max(n_classes - 1, 1))
    probs[index] = peak if n_classes > 1 else 1.0
    return probs


def first_answer_position(tokens: list[Any]) -> Any | None:
    """The first generated token that holds a letter or digit (skips quotes, spaces)."""
    return next((t for t in tokens if re.search(r"\w", t.token or "")), None)


def logprob_distribution(position: Any, classes: list[str], parsed: str) -> np.ndarray | None:
    """Class distribution from one position's top_logprobs, or None if no class shows up.

    A token counts for every class whose name it begins. A token shared by several
    classes goes to the parsed class when it is the token actually generated (its
    continuation decided), else it is split evenly.
    """
    keys = [norm(c) for c in classes]
    chosen = norm(position.token)
    mass = np.zeros(len(classes))
    for alt in position.top_logprobs or []:
        token = norm(alt.token)
        matches = [i for i, k in enumerate(keys) if token and k.startswith(token)]
        if not matches:
            continue
        if token == chosen and classes.index(parsed) in matches:
            matches = [classes.index(parsed)]
        mass[matches] += float(np.exp(alt.logprob)) / len(matches)
    if mass[classes.index(parsed)] <= 0:
        return None
    return mass / mass.sum()


def retry_after(exc: Exception) -> float | None:
    """The server's Retry-After in seconds, if it sent a numeric one."""
    response = getattr(exc, "response", None)
    try:
        return float(response.headers.get("retry-after")) if response is not None else None
    except (TypeError, ValueError):
        return None


class OpenAITeacher(Teacher):
    """Labels texts by asking a chat model behind an OpenAI-compatible API."""

    prompt_version = f"openai-v2-fit{TEACHER_TEXT_WORDS}"
    text_words = TEACHER_TEXT_WORDS

    def __init__(self, task: Task, spec: str, *, held_out: frozenset[int] = frozenset(),
                 concurrency: int = 4, timeout: float | None = None, max_retries_invalid: int = 2,
                 retry: RetryPolicy = RetryPolicy(), example_budget: int = 1500):
        super().__init__(task, spec)
        self.model, self.base_url = parse_spec(spec.partition(":")[2])
        self.concurrency, self.max_retries_invalid, self.retry = concurrency, max_retries_invalid, retry
        self.logprobs = True  # switched off once if the server rejects them
        self.checked = False
        self.timeout = timeout = timeout or float(os.environ.get("TEACHER_TIMEOUT", DEFAULT_TIMEOUT))
        connect = min(timeout, 10.0)  # a black-holed host should not cost a whole minute
        self.client = openai.OpenAI(base_url=self.base_url, api_key=os.environ.get("OPENAI_API_KEY") or DUMMY_KEY,
                                    timeout=openai.Timeout(timeout, connect=connect), max_retries=0)
        self.example_budget = example_budget
        self.prefix = self.build_messages(held_out, example_budget)
        longest = max(len(c) for c in task.classes)
        self.max_tokens = min(48, max(8, longest // 2 + 4))
        self.reminder = ("That is not one of the classes. Reply with exactly one of: "
                         + ", ".join(task.classes) + ".")

    def __repr__(self) -> str:
        return f"OpenAITeacher(model={self.model!r}, base_url={public_url(self.base_url)!r})"

    __str__ = __repr__

    def build_messages(self, held_out: frozenset[int], budget: int) -> list[dict[str, str]]:
        """System prompt, then seed examples as user/assistant turns (see the module docstring)."""
        system = system_prompt(self.task, [])
        left = budget - len(approx_tokenizer(system)["input_ids"])
        messages = [{"role": "system", "content": system}]
        for text, label in pick_examples(self.task, approx_tokenizer, left, held_out):
            messages += [{"role": "user", "content": text}, {"role": "assistant", "content": label}]
        return messages

    def refit(self, task: Task, held_out: frozenset[int] = frozenset()) -> OpenAITeacher:
        """The same server and settings, with example turns drawn from `task`'s seed rows."""
        other = copy.copy(self)
        other.task = task
        other.prefix = other.build_messages(held_out, self.example_budget)
        return other

    @property
    def where(self) -> str:
        return public_url(self.base_url)

    def scrub(self, message: str) -> str:
        """An error text with the API key (should a server echo it) blanked out."""
        key = self.client.api_key
        return message.replace(key, "***") if key and key != DUMMY_KEY else message

    def check(self) -> None:
        """Fail fast, once, if the server is not there or refuses the key."""
        if self.checked:
            return
        try:
            self.client.models.list()
        except openai.APITimeoutError:
            raise self.too_slow() from None
        except openai.APIConnectionError:
            raise self.unreachable() from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise self.refused(exc) from None
        except openai.APIStatusError:
            pass  # some servers have no /models; the first request will tell
        self.checked = True

    def unreachable(self) -> TeacherUnavailable:
        return TeacherUnavailable(
            f"the teacher server at {self.where} is not reachable. Check that it is running "
            "(e.g. `python -m llama_cpp.server --model FILE.gguf --port 8080`, `ollama serve`, "
            "`vllm serve MODEL`), that host and port are right and that the URL ends in /v1.")

    def too_slow(self) -> TeacherUnavailable:
        return TeacherUnavailable(
            f"the teacher server at {self.where} did not answer within {self.timeout:g} s, "
            f"{self.retry.attempts} times: it is stuck or overloaded. Check its log; for a big model on "
            "a CPU raise the limit with the environment variable TEACHER_TIMEOUT (seconds). "
            "Answers received so far are cached: a re-run asks only for the rest.")

    def refused(self, exc: openai.APIStatusError) -> TeacherUnavailable:
        return TeacherUnavailable(f"the teacher server at {self.where} refused the request "
                                  f"({exc.status_code}): check $OPENAI_API_KEY and access to model "
                                  f"{self.model!r}. Server said: {self.scrub(str(exc.message))}")

    def unknown_model(self) -> TeacherUnavailable:
        """A 404: name the models the server offers, if it says."""
        try:
            names = sorted(m.id for m in self.client.models.list())
            offered = "the server offers: " + (", ".join(names[:20]) or "(none)")
        except openai.OpenAIError:
            offered = "the server did not list its models; check the name and that the URL ends in /v1"
        return TeacherUnavailable(f"model {self.model!r} not found at {self.where} (404); {offered}")

    def with_backoff(self, call: Callable[[], Any]) -> Any:
        """Run `call`, retrying 429/5xx/connection errors as `self.retry` allows."""
        attempts = max(1, self.retry.attempts)
        for failures in range(1, attempts + 1):
            try:
                return call()
            except TRANSIENT as exc:
                if failures == attempts:
                    raise
                wait = self.retry.delay(failures, retry_after(exc))
                log.info("teacher %s: %s, retry %d in %.1fs", self.where, type(exc).__name__, failures, wait)
                time.sleep(wait)
        raise AssertionError("unreachable")

    def create(self, messages: list[dict[str, str]]) -> Any:
        """One chat completion, with logprobs while the server accepts them."""
        def ask(**extra: Any) -> Any:
            return self.with_backoff(lambda: self.client.chat.completions.create(
                model=self.model, messages=messages, max_tokens=self.max_tokens, temperature=0, **extra))

        if not self.logprobs:
            return ask()
        try:
            return ask(logprobs=True, top_logprobs=TOP_LOGPROBS)
        except (openai.BadRequestError, openai.UnprocessableEntityError) as exc:
            response = ask()  # if this fails too, logprobs were not the problem
            self.logprobs = False
            log.warning("teacher %s rejected logprobs (%s); asking without", self.where,
                        self.scrub(str(exc.message)))
            return response

    def complete(self, messages: list[dict[str, str]]) -> tuple[str, Any | None]:
        """Reply text and the first answer token's logprobs; server errors become clear ones."""
        try:
            choice = self.create(messages).choices[0]
        except openai.NotFoundError:
            raise self.unknown_model() from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise self.refused(exc) from None
        except (openai.RateLimitError, openai.InternalServerError) as exc:
            raise TeacherUnavailable(f"the teacher server at {self.where} kept answering {exc.status_code} "
                                     f"after {self.retry.attempts} tries; try later or lower the "
                                     "concurrency") from None
        except openai.APIStatusError as exc:
            raise RuntimeError(f"the teacher server at {self.where} answered {exc.status_code}: "
                               f"{self.scrub(str(exc.message))}") from None
        except openai.APITimeoutError:
            raise self.too_slow() from None
        except openai.APIConnectionError:
            raise self.unreachable() from None
        tokens = choice.logprobs.content if choice.logprobs and choice.logprobs.content else []
        return choice.message.content or "", first_answer_position(tokens)

    def answer(self, text: str) -> tuple[np.ndarray, bool]:
        """Ask until the reply is a class (at most 1 + max_retries_invalid times)."""
        classes = self.task.classes
        messages = self.prefix + [{"role": "user", "content": fit_words(text, TEACHER_TEXT_WORDS)}]
        for _ in range(self.max_retries_invalid + 1):
            reply, position = self.complete(messages)
            parsed = parse_class(reply, classes)
            if parsed is not None:
                probs = logprob_distribution(position, classes, parsed) if position is not None else None
                return (smoothed(classes.index(parsed), len(classes)) if probs is None else probs), True
            messages = messages + [{"role": "assistant", "content": reply[:200]},
                                   {"role": "user", "content": self.reminder}]
        return uniform(len(classes)), False

    def chat(self, messages: list[dict[str, str]], max_tokens: int = 512) -> str:
        """Free text (to write synthetic examples), with the same retries; sampled, not greedy."""
        self.check()
        response = self.with_backoff(lambda: self.client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=max_tokens, temperature=0.8))
        return response.choices[0].message.content or ""

    def predict(self, texts: list[str]) -> list[tuple[np.ndarray, bool]]:
        self.check()
        if not texts:
            return []
        with ThreadPoolExecutor(max_workers=min(self.concurrency, len(texts))) as pool:
            futures = [pool.submit(self.answer, text) for text in texts]
            try:
                return [f.result() for f in futures]
            except BaseException:
                for f in futures:
                    f.cancel()
                raise
