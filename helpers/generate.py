"""Synthetic examples: a teacher that can write invents new texts per class.

Invented texts are only as good as their checks, so each one must pass two:
it is not a near-copy of a seed or test text (cosine < 0.95 on MiniLM
embeddings: copies teach nothing new, and test copies would leak), and the
teacher, asked to classify it afresh, gives back the class it was written for.
"""

from __future__ import annotations

import re

import numpy as np
import pandas as pd

from helpers.embeddings import embed
from helpers.task import Task, normalise

NEAR_DUPLICATE = 0.95


def writing_prompt(task: Task, label: str, examples: list[str], snippets: list[str], n: int) -> list[dict]:
    """Chat messages asking for `n` new texts of one class, one per line."""
    shown = "\n".join(f"- {t}" for t in examples)
    style = "\n".join(f"- {t}" for t in snippets)
    return [{"role": "system", "content": task.description},
            {"role": "user", "content": (
                f"Write {n} new, varied texts that belong to the class '{label}': "
                f"{task.class_descriptions[label]}\n\nExamples of this class:\n{shown}\n\n"
                f"Texts from the same domain, for style only:\n{style}\n\n"
                "Answer with one text per line, no numbering, nothing else.")}]


def parse_lines(reply: str) -> list[str]:
    """Lines of a reply without list markers, quotes or blanks."""
    lines = (re.sub(r"^\s*(?:[-*•]|\d+[.)])\s*", "", line).strip().strip('"') for line in reply.splitlines())
    return [line for line in lines if len(line.split()) >= 3]


def write_examples(task: Task, teacher, per_class: int, seed: int = 0) -> pd.DataFrame:
    """Ask the teacher for `per_class` new texts of every class (text, intended)."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in task.classes:
        examples = task.train.loc[task.train["label"] == label, "text"].tolist()[:4]
        pool = task.unstructured["text"].tolist()
        snippets = [pool[i] for i in rng.choice(len(pool), size=min(3, len(pool)), replace=False)] if pool else []
        reply = teacher.chat(writing_prompt(task, label, examples, snippets, per_class))
        rows += [(text, label) for text in parse_lines(reply)[:per_class]]
    return pd.DataFrame(rows, columns=["text", "intended"]).drop_duplicates("text")


def drop_near_copies(frame: pd.DataFrame, references: list[str]) -> pd.DataFrame:
    """Remove texts equal or nearly equal (cosine >= 0.95) to any reference text."""
    if frame.empty or not references:
        return frame
    keys = {normalise(t) for t in references}
    frame = frame[~frame["text"].map(normalise).isin(keys)]
    if frame.empty:
        return frame
    similarity = (embed(frame["text"].tolist()) @ embed(references).T).max(axis=1)
    return frame[similarity < NEAR_DUPLICATE]


def synthesize(task: Task, teacher, per_class: int, seed: int = 0) -> tuple[pd.DataFrame, object, dict]:
    """Write, de-duplicate against seed and test rows, and keep what the teacher labels back.

    Returns:
        The kept rows (text, intended), the teacher's labels for them, and counts.
    """
    written = write_examples(task, teacher, per_class, seed)
    references = task.train["text"].tolist() + task.test["text"].tolist()
    fresh = drop_near_copies(written, references).reset_index(drop=True)
    labels = teacher.label(fresh["text"].tolist(), progress=False) if len(fresh) else None
    agree = np.array(labels.labels) == fresh["intended"].to_numpy() if labels is not None else np.array([], bool)
    stats = {"written": len(written), "near_copies": len(written) - len(fresh),
             "label_back_failed": int((~agree).sum()), "kept": int(agree.sum())}
    kept = np.flatnonzero(agree)
    return fresh.iloc[kept].reset_index(drop=True), (labels.select(kept) if labels else None), stats
