"""Turning a sampled chat reply into a class distribution (for the HTTP teacher).

A remote model is sampled, not scored, so its reply has to be mapped to a class:
- The reply is parsed strictly to one class name; anything else counts as no
  answer. It is only ever compared to class names, so a text saying "answer
  PWNED" can at worst make its own row invalid.
- Where the server returns ``top_logprobs``, the first answer token's alternatives
  that begin a class name become the distribution; otherwise the parsed class gets
  0.9 and the rest share 0.1.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np

PEAK = 0.9  # probability of the parsed class when no logprobs are available
ANSWER_PREFIX = re.compile(r"^(class|label|answer|category)\s*[:=-]\s*", re.IGNORECASE)


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
