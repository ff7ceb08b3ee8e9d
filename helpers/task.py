"""A classification task: job description, seed data, test data, unlabelled corpus.

The on-disk format is the one distil labs uses, so learners can bring their own
task folders unchanged:

    job_description.json   {"task_description": ..., "classes_description": {class: text}}
    train.csv              question,answer   (seed examples, a handful per class)
    test.csv               question,answer   (held out, only for evaluation)
    unstructured.csv       context           (unlabelled texts for the teacher)

Loading never writes to the task folder.
"""

from __future__ import annotations

import difflib
import json
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from helpers.problems import Problem, Problems, TaskError
from helpers.tables import MAX_CELL_CHARS, read_table

FORMULA = re.compile(r"^(=|[+\-@][A-Za-z_.]+\()")  # what a spreadsheet would evaluate
LONG_TEXT_WORDS = 200  # ~256 word-piece tokens: the student's default max length
IMBALANCE_RATIO = 3.0


@dataclass
class Task:
    """Everything the pipeline needs to know about one task.

    Frames use ``text``/``label`` columns (from the CSVs' ``question``/``answer``
    or ``context``) plus ``row``, the spreadsheet row number for messages.
    """

    name: str
    directory: Path
    description: str
    class_descriptions: dict[str, str]
    train: pd.DataFrame
    test: pd.DataFrame
    unstructured: pd.DataFrame
    problems: list[Problem] = field(default_factory=list)

    @property
    def classes(self) -> list[str]:
        """Class names in the order of job_description.json."""
        return list(self.class_descriptions)

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.problems if p.severity == "warning"]

    def summary(self) -> str:
        """One line a learner can read: sizes and classes."""
        return (f"task '{self.name}': {len(self.classes)} classes, {len(self.train)} train, "
                f"{len(self.test)} test, {len(self.unstructured)} unlabelled rows")


def read_job_description(path: Path, problems: Problems) -> tuple[str, dict[str, str]]:
    """Read and check job_description.json; errors carry line and column."""
    name = path.name
    if not path.exists():
        problems.error(name, "file not found", "create it with task_description and classes_description")
        return "", {}
    try:
        data = json.loads(path.read_text(encoding="utf-8-sig"))
    except UnicodeDecodeError:
        problems.error(name, "the file is not UTF-8 text", "save it as UTF-8")
        return "", {}
    except json.JSONDecodeError as exc:
        problems.error(name, f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                       "check for a missing comma, quote or brace there", row=exc.lineno)
        return "", {}
    if not isinstance(data, dict):
        problems.error(name, "the top level must be a JSON object {...}", "see data-banking-routing/")
        return "", {}
    return check_description(data, name, problems), check_classes(data, name, problems)


def check_description(data: dict, name: str, problems: Problems) -> str:
    description = data.get("task_description")
    if not isinstance(description, str) or not description.strip():
        problems.error(name, "'task_description' is missing or empty",
                       "describe in one paragraph what the texts are and what to decide",
                       column="task_description")
        return ""
    return description.strip()


def check_classes(data: dict, name: str, problems: Problems) -> dict[str, str]:
    """Class names in file order; each needs a non-empty description."""
    classes = data.get("classes_description")
    if not isinstance(classes, dict) or not classes:
        problems.error(name, "'classes_description' must be an object {class name: description}",
                       "add one entry per class", column="classes_description")
        return {}
    result: dict[str, str] = {}
    for raw, text in classes.items():
        label = str(raw).strip()
        if not label:
            problems.error(name, "a class name is empty", "give every class a name",
                           column="classes_description")
        elif label.lower() in {c.lower() for c in result}:
            problems.error(name, f"class '{label}' is listed twice (names differ only in case or spaces)",
                           "merge the two entries", column="classes_description", value=label)
        else:
            if not isinstance(text, str) or not text.strip():
                problems.error(name, f"class '{label}' has no description", "describe what belongs in it",
                               column="classes_description", value=label)
            result[label] = str(text or "").strip()
    if len(result) == 1:
        problems.error(name, "only one class: there is nothing to decide",
                       "add at least a second class", column="classes_description")
    return result


def canonical_labels(frame: pd.DataFrame, classes: list[str], name: str,
                     problems: Problems) -> pd.DataFrame:
    """Map labels to class names, forgiving case and spaces, reporting the rest."""
    lookup = {c.lower(): c for c in classes}
    fixed = 0
    labels = []
    for row, label in zip(frame["row"], frame["answer"]):
        canonical = lookup.get(" ".join(label.split()).lower())
        if canonical is None:
            hint = difflib.get_close_matches(label, classes, n=1, cutoff=0.6)
            fix = f"did you mean '{hint[0]}'? " if hint else ""
            fix += f"use one of: {', '.join(classes[:12])}" + (", ..." if len(classes) > 12 else "")
            message = "empty label" if not label else "unknown label"
            problems.error(name, message, fix, row=int(row), column="answer", value=label)
        elif canonical != label:
            fixed += 1
        labels.append(canonical)
    if fixed:
        problems.warn(name, f"{fixed} label(s) differ from the class name only in case or spaces",
                      "they were read as the class name; fix the spelling to silence this",
                      column="answer")
    return frame.assign(answer=labels)


def check_texts(frame: pd.DataFrame, column: str, name: str, problems: Problems) -> None:
    """Empty, huge, formula-like, long and duplicate texts."""
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
        problems.warn(name, f"{long} text(s) are longer than ~{LONG_TEXT_WORDS} words and will be "
                      "truncated by the student", "shorten them if the end matters", column=column)
    duplicated = frame[frame[column].str.len().gt(0) & frame.duplicated(column, keep="first")]
    for row, text in zip(duplicated["row"], duplicated[column]):
        problems.warn(name, "duplicate text (an earlier row has the same text)",
                      "delete the repeated row", row=int(row), column=column, value=text)


def check_balance(train: pd.DataFrame, test: pd.DataFrame, classes: list[str],
                  problems: Problems) -> None:
    """Every class needs seed rows; test coverage and balance are reported."""
    counts = train["answer"].value_counts()
    for label in classes:
        if counts.get(label, 0) == 0:
            problems.error("train.csv", f"class '{label}' has no example",
                           "add a few rows with this answer, or remove the class from "
                           "job_description.json", column="answer", value=label)
        if label not in set(test["answer"]):
            problems.warn("test.csv", f"class '{label}' has no test row; its accuracy cannot be measured",
                          "add a few test rows for it", column="answer", value=label)
    present = counts[counts > 0]
    if len(present) > 1 and present.max() > IMBALANCE_RATIO * present.min():
        problems.warn("train.csv", f"classes are imbalanced ({present.idxmax()}: {present.max()} rows, "
                      f"{present.idxmin()}: {present.min()} rows)", "add rows to the small classes",
                      column="answer")


def normalise(text: str) -> str:
    """Key for 'same text' checks: case and spacing do not matter."""
    return " ".join(text.lower().split())


def check_leakage(train: pd.DataFrame, test: pd.DataFrame, unstructured: pd.DataFrame,
                  problems: Problems) -> None:
    """Texts shared with test.csv would make test accuracy a lie."""
    test_keys = set(test["text"].map(normalise))
    for name, frame in (("train.csv", train), ("unstructured.csv", unstructured)):
        shared = frame[frame["text"].map(normalise).isin(test_keys)]
        if len(shared):
            rows = ", ".join(str(r) for r in shared["row"].head(10))
            problems.warn(name, f"{len(shared)} row(s) also appear in test.csv (rows {rows}); "
                          "they are left out of training", "remove them from one of the files",
                          column="question" if name == "train.csv" else "context")


def load_frames(directory: Path, problems: Problems) -> dict[str, pd.DataFrame | None]:
    """Read the three CSVs; unstructured.csv is optional."""
    frames: dict[str, pd.DataFrame | None] = {}
    for file, columns in (("train.csv", ("question", "answer")), ("test.csv", ("question", "answer")),
                          ("unstructured.csv", ("context",))):
        path = directory / file
        if path.exists():
            frames[file] = read_table(path, columns, problems)
        elif file == "unstructured.csv":
            problems.warn(file, "file not found: the teacher has no texts to label",
                          "add unlabelled texts in a 'context' column to get the most from distillation")
            frames[file] = pd.DataFrame({"row": [], "context": []}, dtype=str)
        else:
            problems.error(file, "file not found", f"create {file} with columns {','.join(columns)}")
            frames[file] = None
    return frames


def inspect_task(directory: str | Path) -> tuple[Task | None, list[Problem]]:
    """Load a task folder and collect every problem, without raising."""
    directory = Path(directory)
    problems = Problems()
    if not directory.is_dir():
        problems.error(str(directory), "task folder not found",
                       "pass a folder holding job_description.json, train.csv and test.csv")
        return None, problems.items
    description, classes = read_job_description(directory / "job_description.json", problems)
    frames = load_frames(directory, problems)
    if not classes or any(f is None for f in frames.values()):
        return None, problems.items
    for file in ("train.csv", "test.csv"):
        check_texts(frames[file], "question", file, problems)
        frames[file] = canonical_labels(frames[file], list(classes), file, problems)
    check_texts(frames["unstructured.csv"], "context", "unstructured.csv", problems)
    train, test, unstructured = (to_task_frame(frames[f]) for f in
                                 ("train.csv", "test.csv", "unstructured.csv"))
    check_balance(frames["train.csv"], frames["test.csv"], list(classes), problems)
    check_leakage(train, test, unstructured, problems)
    task = Task(directory.resolve().name.removeprefix("data-"), directory, description, classes,
                train, test, unstructured, problems.items)
    return task, problems.items


def to_task_frame(frame: pd.DataFrame) -> pd.DataFrame:
    """Rename file columns to the pipeline's ``text``/``label``."""
    return frame.rename(columns={"question": "text", "context": "text", "answer": "label"}) \
        .reset_index(drop=True)


def load_task(directory: str | Path) -> Task:
    """Load a task folder, raising one `TaskError` that lists every error."""
    task, problems = inspect_task(directory)
    errors = [p for p in problems if p.severity == "error"]
    if errors or task is None:
        raise TaskError(errors, str(directory))
    return task


def format_report(directory: str | Path, problems: list[Problem], task: Task | None) -> str:
    """The validation report printed by ``python -m helpers validate``."""
    errors = [p for p in problems if p.severity == "error"]
    warnings = [p for p in problems if p.severity == "warning"]
    lines = [f"Validating {directory}"]
    if task is not None:
        lines.append("  " + task.summary())
    lines += [f"  ERROR   {p}" for p in errors] + [f"  WARNING {p}" for p in warnings]
    verdict = "FAILED" if errors else "OK"
    lines.append(f"{verdict}: {len(errors)} error(s), {len(warnings)} warning(s)")
    return "\n".join(lines)
