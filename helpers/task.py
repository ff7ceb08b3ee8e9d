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

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from helpers.checks import canonical_labels, check_balance, check_duplicates, check_texts, drop_leakage, normalise
from helpers.limits import MAX_CLASS_NAME_CHARS, MAX_JSON_BYTES
from helpers.problems import Problem, Problems, TaskError, shorten
from helpers.tables import INVISIBLE, decode_bytes, label_key, read_bytes, read_table

__all__ = ["Task", "format_report", "inspect_task", "load_task", "normalise"]


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
    if not (path.exists() or path.is_symlink()):
        problems.error(name, "file not found", "create it with task_description and classes_description")
        return "", {}
    raw = read_bytes(path, MAX_JSON_BYTES, problems, root=path.parent)
    text = None if raw is None else decode_bytes(raw, name, problems)
    data = None if text is None else parse_json(text, name, problems)
    if data is None:
        return "", {}
    if not isinstance(data, dict):
        problems.error(name, "the top level must be a JSON object {...}", "see data-banking-routing/")
        return "", {}
    return check_description(data, name, problems), check_classes(data, name, problems)


class RepeatedKey(ValueError):
    """A JSON object names one key twice; json.loads would silently keep the last."""


def unique_keys(pairs: list[tuple[str, object]]) -> dict:
    keys = [k for k, _ in pairs]
    repeated = next((k for k in keys if keys.count(k) > 1), None)
    if repeated is not None:
        raise RepeatedKey(repeated)
    return dict(pairs)


def parse_json(text: str, name: str, problems: Problems) -> object | None:
    """json.loads, with every way it can fail turned into a problem the user can fix."""
    try:
        return json.loads(text.lstrip("\ufeff"), object_pairs_hook=unique_keys)
    except json.JSONDecodeError as exc:
        problems.error(name, f"invalid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}",
                       "check for a missing comma, quote or brace there", row=exc.lineno)
    except RepeatedKey as exc:
        problems.error(name, f"the key '{shorten(str(exc), 60)}' is written twice in one object; JSON keeps "
                       "only the last", "merge the two entries into one", value=str(exc))
    except RecursionError:
        problems.error(name, "the JSON is nested too deeply to be a job description",
                       "see data-banking-routing/job_description.json for the expected shape")
    return None


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
        if class_name_ok(label, result, name, problems):
            if not isinstance(text, str) or not text.strip():
                problems.error(name, f"class '{shorten(label, 60)}' has no description (text)",
                               "describe in words what belongs in it", column="classes_description", value=label)
            result[label] = text.strip() if isinstance(text, str) else ""
    if len(result) == 1:
        problems.error(name, "only one class: there is nothing to decide",
                       "add at least a second class", column="classes_description")
    return result


def class_name_ok(label: str, earlier: dict[str, str], name: str, problems: Problems) -> bool:
    """Empty, overlong, invisible-character and look-alike names are errors."""
    where = {"column": "classes_description", "value": label}
    twin = next((c for c in earlier if label_key(c) == label_key(label)), None)
    if not label:
        problems.error(name, "a class name is empty", "give every class a name", column="classes_description")
    elif len(label) > MAX_CLASS_NAME_CHARS:
        problems.error(name, f"a class name is {len(label):,} characters (limit {MAX_CLASS_NAME_CHARS})",
                       "use a short name and put the explanation in its description", **where)
    elif invisible := INVISIBLE.search(label):
        problems.error(name, f"class '{shorten(label, 60)}' holds an invisible character "
                       f"(U+{ord(invisible.group()):04X}) at position {invisible.start() + 1}",
                       "retype the name without it", **where)
    elif twin is not None:
        problems.error(name, f"class '{shorten(label, 60)}' is listed twice (the names differ only in case, "
                       "spaces or Unicode form)", "merge the two entries", **where)
    else:
        return True
    return False


def load_frames(directory: Path, classes: list[str], problems: Problems) -> dict[str, pd.DataFrame | None]:
    """Read the three CSVs; unstructured.csv is optional."""
    frames: dict[str, pd.DataFrame | None] = {}
    for file, columns in (("train.csv", ("question", "answer")), ("test.csv", ("question", "answer")),
                          ("unstructured.csv", ("context",))):
        path = directory / file
        if path.exists() or path.is_symlink():
            frames[file] = read_table(path, columns, problems, root=directory, labels=classes)
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
        problems.error(str(directory), "is a file, not a task folder" if directory.exists() else
                       "task folder not found",
                       "pass a folder holding job_description.json, train.csv and test.csv")
        return None, problems.items
    description, classes = read_job_description(directory / "job_description.json", problems)
    frames = load_frames(directory, list(classes), problems)
    if not classes or any(f is None for f in frames.values()):
        return None, problems.summarised()
    for file in ("train.csv", "test.csv"):
        check_texts(frames[file], "question", file, problems)
        frames[file] = canonical_labels(frames[file], list(classes), file, problems)
        check_duplicates(frames[file], "question", file, problems)
    check_texts(frames["unstructured.csv"], "context", "unstructured.csv", problems)
    check_duplicates(frames["unstructured.csv"], "context", "unstructured.csv", problems)
    train, test, unstructured = (to_task_frame(frames[f]) for f in
                                 ("train.csv", "test.csv", "unstructured.csv"))
    train, unstructured = drop_leakage(train, test, unstructured, problems)
    check_balance(train, test, list(classes), problems)
    task = Task(directory.resolve().name.removeprefix("data-"), directory, description, classes,
                train, test, unstructured, problems.summarised())
    return task, task.problems


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
