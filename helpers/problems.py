"""Problems found in a user's files, collected so they can all be shown at once.

Learners edit task files in spreadsheets; fixing one error per run is slow and
frustrating, so every check appends a `Problem` and the caller raises a single
`TaskError` listing all of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field


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
        text = f"{where}: {self.message}"
        if self.value is not None:
            text += f" (value: {shorten(self.value)!r})"
        if self.fix:
            text += f" -> {self.fix}"
        return text


def shorten(value: str, limit: int = 80) -> str:
    """Shorten long cell values so one 5 MB cell cannot flood the report."""
    value = str(value)
    return value if len(value) <= limit else value[: limit - 3] + "..."


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
