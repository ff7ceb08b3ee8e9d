"""A teacher behind an OpenAI-compatible HTTP server (vLLM, Ollama, llama.cpp server, OpenAI).

Spec: ``openai:MODEL@URL``, e.g. ``openai:smollm2@http://127.0.0.1:8080/v1``, optionally
``?concurrency=N`` (requests in flight at once, default 4). The API key comes from
``$OPENAI_API_KEY`` (local servers need none); it is never printed, logged or put into
an error message.

- The reply is parsed to one class (`helpers.teachers.replies`); anything else gets a
  reminder and a retry, then the text is marked invalid (uniform probabilities).
  Servers that reject logprobs are asked without them.
- The seed examples are sent as earlier user/assistant turns, not inside the
  system prompt: SmolLM2-135M answered with a class name 4 times out of 4 that way,
  and 0 out of 4 with the examples in the system prompt.

Texts are sent only as the user message. Requests run in a thread pool and each answer
goes to the cache as it arrives (`helpers.teachers.pool`); 429, 5xx and connection
errors are retried with bounded exponential backoff.
"""

from __future__ import annotations

import copy
import logging
import os
import re
import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import numpy as np
import openai

from helpers.limits import TEACHER_TEXT_WORDS
from helpers.task import Task
from helpers.teachers.base import Teacher, fit_words, uniform
from helpers.teachers.local import pick_examples, system_prompt
from helpers.teachers.pool import RetryPolicy, answer_concurrently, retry_after
from helpers.teachers.replies import first_answer_position, logprob_distribution, parse_class, smoothed

log = logging.getLogger(__name__)

DUMMY_KEY = "not-needed"  # local servers ignore the key, but the client insists on one
SPEC = re.compile(r"^(?P<model>\S+?)@(?P<url>https?://\S+)$")
TOP_LOGPROBS = 20
TRANSIENT = (openai.RateLimitError, openai.InternalServerError, openai.APIConnectionError)


DEFAULT_TIMEOUT = 60.0  # seconds per request; $TEACHER_TIMEOUT overrides it


class TeacherUnavailable(RuntimeError):
    """The teacher's server cannot be reached or keeps refusing: the run cannot go on."""


def parse_spec(rest: str) -> tuple[str, str, int]:
    """Model, base URL and concurrency from the part of the spec after ``openai:``."""
    from helpers.teachers import HTTP_OPTIONS, spec_options

    address, options = spec_options(rest.strip(), HTTP_OPTIONS)
    match = SPEC.match(address)
    if not match:
        raise ValueError(f"bad teacher spec 'openai:{rest}': use openai:MODEL@URL, "
                         "e.g. openai:smollm2@http://127.0.0.1:8080/v1 (optionally ?concurrency=8)")
    return match["model"], match["url"].rstrip("/"), options["concurrency"]


def public_url(url: str) -> str:
    """The URL without any user:password part, safe to show."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(netloc=parts.netloc.rpartition("@")[2]))


def approx_tokenizer(text: str) -> dict[str, list[int]]:
    """Token count estimate (~4 characters a token) for `pick_examples`: no tokenizer over HTTP."""
    return {"input_ids": [0] * (len(text) // 4 + 1)}


class OpenAITeacher(Teacher):
    """Labels texts by asking a chat model behind an OpenAI-compatible API."""

    prompt_version = f"openai-v2-fit{TEACHER_TEXT_WORDS}"
    text_words = TEACHER_TEXT_WORDS

    def __init__(self, task: Task, spec: str, *, held_out: frozenset[int] = frozenset(),
                 concurrency: int | None = None, timeout: float | None = None, max_retries_invalid: int = 2,
                 retry: RetryPolicy = RetryPolicy(), example_budget: int = 1500):
        super().__init__(task, spec)
        self.model, self.base_url, in_spec = parse_spec(spec.partition(":")[2])
        self.concurrency, self.max_retries_invalid, self.retry = concurrency or in_spec, max_retries_invalid, retry
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

    def stream(self, texts: list[str], batch_size: int = 8) -> Iterator[tuple[int, tuple[np.ndarray, bool]]]:
        """Answers as they arrive, `concurrency` requests in flight (`batch_size` plays no part)."""
        self.check()
        return answer_concurrently(self.answer, texts, self.concurrency)

    def predict(self, texts: list[str]) -> list[tuple[np.ndarray, bool]]:
        return [answer for _, answer in sorted(self.stream(texts), key=lambda pair: pair[0])]
