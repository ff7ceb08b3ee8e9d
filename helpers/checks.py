"""The rules a task's rows must follow, checked after the files are read.

Each check appends problems (see `helpers.problems`) instead of raising, so the
learner sees every one at once; `helpers.task` runs them in order.
"""

from __future__ import annotations

import difflib
import re

import pandas as pd

from helpers.limits import LONG_TEXT_WORDS, MAX_CELL_CHARS, MAX_WINDOW
from helpers.problems import Problems, shorten
from helpers.tables import label_key

FORMULA = re.compile(r"^(=|[+\-@][A-Za-z_.]+\()")  # what a spreadsheet would evaluate
IMBALANCE_RATIO = 3.0


def canonical_labels(frame: pd.DataFrame, classes: list[str], name: str,
                     problems: Problems) -> pd.DataFrame:
    """Map labels to class names, forgiving case, spaces and Unicode form, reporting the rest."""
    lookup = {label_key(c): c for c in classes}
    fixed = 0
    labels = []
    for row, label in zip(frame["row"], frame["answer"]):
        canonical = lookup.get(label_key(label))
        if canonical is None:
            problems.error(name, "empty label" if not label else "unknown label", label_hint(label, classes),
                           row=int(row), column="answer", value=label)
        elif canonical != label:
            fixed += 1
        labels.append(canonical)
    if fixed:
        problems.warn(name, f"{fixed} label(s) differ from the class name only in case, spaces or Unicode form",
                      "they were read as the class name; fix the spelling to silence this",
                      column="answer")
    return frame.assign(answer=labels)


def label_hint(label: str, classes: list[str]) -> str:
    """'did you mean ...? use one of: ...', with long names shortened."""
    hint = difflib.get_close_matches(label[:200], classes, n=1, cutoff=0.6)
    fix = f"did you mean '{shorten(hint[0], 60)}'? " if hint else ""
    return fix + f"use one of: {', '.join(shorten(c, 60) for c in classes[:12])}" + \
        (", ..." if len(classes) > 12 else "")


def check_texts(frame: pd.DataFrame, column: str, name: str, problems: Problems) -> None:
    """Empty, huge, formula-like and long texts."""
    for row, text in zip(frame["row"], frame[column]):
        if not text:
            problems.error(name, "empty text", "write the text or delete the row",
                           row=int(row), column=column)
        elif len(text) > MAX_CELL_CHARS:
            problems.error(name, f"text is {len(text):,} characters (limit {MAX_CELL_CHARS:,})",
                           "split it into shorter examples", row=int(row), column=column, value=text)
        elif FORMULA.match(text):
            problems.warn(name, "text starts like a spreadsheet formula; it is used as plain text",
                          "check the cell shows the words, not a formula result",
                          row=int(row), column=column, value=text)
    long = int((frame[column].str.split().str.len() > LONG_TEXT_WORDS).sum())
    if long:
        problems.warn(name, f"{long} text(s) are longer than ~{LONG_TEXT_WORDS} words; the student reads at most "
                      f"the first {MAX_WINDOW} word pieces (about {LONG_TEXT_WORDS} words) of each",
                      "put what decides the class near the start of such texts", column=column)


def check_duplicates(frame: pd.DataFrame, column: str, name: str, problems: Problems) -> None:
    """The same text twice: a warning; the same text with two answers: an error."""
    keys = frame[column].map(normalise)
    first: dict[str, tuple[int, str | None]] = {}
    for row, key, label in zip(frame["row"], keys, frame.get("answer", [None] * len(frame))):
        if not key:
            continue
        if key not in first:
            first[key] = (int(row), label)
        elif label is not None and first[key][1] is not None and label != first[key][1]:
            problems.error(name, f"same text as row {first[key][0]}, but with answer '{shorten(label, 60)}' here "
                           f"and '{shorten(first[key][1], 60)}' there", "decide which answer is right and "
                           "delete the other row", row=int(row), column="answer", value=label)
        else:
            problems.warn(name, "duplicate text (an earlier row has the same text)",
                          "delete the repeated row", row=int(row), column=column)


def check_balance(train: pd.DataFrame, test: pd.DataFrame, classes: list[str],
                  problems: Problems) -> None:
    """Every class needs seed rows; test coverage and balance are reported."""
    counts, tested = train["label"].value_counts(), set(test["label"])
    for label in classes:
        if counts.get(label, 0) == 0:
            problems.error("train.csv", f"class '{shorten(label, 60)}' has no example left for training",
                           "add a few rows with this answer, or remove the class from "
                           "job_description.json", column="answer", value=label)
        elif counts[label] == 1:
            problems.warn("train.csv", f"class '{shorten(label, 60)}' has only one train row: the student "
                          "learns from it, but the never-worse check has no row of it to hold out, so it "
                          "cannot see how the class fares", "add a second row", column="answer", value=label)
        if label not in tested:
            problems.warn("test.csv", f"class '{shorten(label, 60)}' has no test row; its accuracy cannot be "
                          "measured", "add a few test rows for it", column="answer", value=label)
    present = counts[counts > 0]
    if len(present) > 1 and present.max() > IMBALANCE_RATIO * present.min():
        problems.warn("train.csv", f"classes are imbalanced ({shorten(present.idxmax(), 60)}: {present.max()} "
                      f"rows, {shorten(present.idxmin(), 60)}: {present.min()} rows)",
                      "add rows to the small classes", column="answer")


def normalise(text: str) -> str:
    """Key for 'same text' checks: case and spacing do not matter."""
    return " ".join(text.lower().split())


def drop_leakage(train: pd.DataFrame, test: pd.DataFrame, unstructured: pd.DataFrame,
                 problems: Problems) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leave out of training every train or unlabelled row whose text is a test text.

    Trained on, such a row would make test accuracy a lie. The files are not
    changed; the rows are only left out of this run, and the warning says which.
    """
    test_keys = set(test["text"].map(normalise))
    kept = []
    for name, frame in (("train.csv", train), ("unstructured.csv", unstructured)):
        shared = frame["text"].map(normalise).isin(test_keys)
        if shared.any():
            rows = ", ".join(str(r) for r in frame.loc[shared, "row"].head(10))
            problems.warn(name, f"{int(shared.sum())} row(s) also appear in test.csv (rows {rows}"
                          f"{', ...' if shared.sum() > 10 else ''}); they are left out of training",
                          "remove them from one of the files",
                          column="question" if name == "train.csv" else "context")
        kept.append(frame[~shared].reset_index(drop=True))
    return kept[0], kept[1]
