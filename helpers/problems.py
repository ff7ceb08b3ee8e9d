"""Problems found in a user's files, collected so they can all be shown at once.

Learners edit task files in spreadsheets; fixing one error per run is slow and
frustrating, so every check appends a `Problem` and the caller raises a single
`TaskError` listing all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from helpers.limits import MAX_REPEATS


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in a task file.

    Args:
        file: File name as the user sees it, e.g. ``train.csv``.
        message: What is wrong, in plain words.
        fix: What the user should do about it.
        row: Row number as a spreadsheet shows it (header is row 1), if any.
        column: Column name, if any.
        value: The offending value, shortened for display.
        severity: ``"error"`` stops loading, ``"warning"`` is only reported.
    """

    file: str
    message: str
    fix: str = ""
    row: int | None = None
    column: str | None = None
    value: str | None = None
    severity: str = "error"

    def __str__(self) -> str:
        where = self.file
        if self.row is not None:
            where += f", row {self.row}"
        if self.column:
            where += f", column '{self.column}'"
        text = f"{where}: {shorten(self.message, 400)}"
        if self.value is not None:
            text += f" (value: {shorten(self.value)!r})"
        if self.fix:
            text += f" -> {self.fix}"
        return text


def shorten(value: str, limit: int = 80) -> str:
    """Shorten long cell values so one 5 MB cell cannot flood the report."""
    value = str(value)
    return value if len(value) <= limit else value[: limit - 3] + "..."


def row_ranges(rows: list[int]) -> str:
    """[2, 3, 4, 9] -> '2-4, 9'."""
    spans: list[list[int]] = []
    for row in rows:
        if spans and row == spans[-1][1] + 1:
            spans[-1][1] = row
        else:
            spans.append([row, row])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)


@dataclass
class Problems:
    """An append-only list of problems with convenience constructors."""

    items: list[Problem] = field(default_factory=list)

    def error(self, file: str, message: str, fix: str = "", **where) -> None:
        """Record a problem that makes the task unusable."""
        self.items.append(Problem(file, message, fix, severity="error", **where))

    def warn(self, file: str, message: str, fix: str = "", **where) -> None:
        """Record a problem the task can live with, but the user should know."""
        self.items.append(Problem(file, message, fix, severity="warning", **where))

    def summarised(self) -> list[Problem]:
        """The problems, with each one repeated on more than MAX_REPEATS rows told once.

        5,000 duplicate rows must not print 4,999 lines: the learner needs the count
        and where to start looking ("first at rows 2-6").
        """
        groups: dict[tuple, list[Problem]] = {}
        for p in self.items:
            groups.setdefault((p.file, p.severity, p.message, p.column, p.fix), []).append(p)
        result = []
        for group in groups.values():
            if len(group) <= MAX_REPEATS or any(p.row is None for p in group):
                result += group
            else:
                rows = sorted(p.row for p in group)
                message = f"{group[0].message}: {len(group):,} rows, first at rows {row_ranges(rows[:MAX_REPEATS])}"
                result.append(replace(group[0], message=message, row=None))
        return result

    @property
    def errors(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "error"]

    @property
    def warnings(self) -> list[Problem]:
        return [p for p in self.items if p.severity == "warning"]


class TaskError(ValueError):
    """Raised once with every error found, so the user can fix them in one go."""

    def __init__(self, problems: list[Problem], directory: str = ""):
        self.problems = problems
        head = f"{len(problems)} problem(s) in task {directory!s}:".replace("  ", " ")
        super().__init__("\n".join([head] + [f"  - {p}" for p in problems]))
