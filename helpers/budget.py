"""A time budget for one run: the extra trainings that make a verdict steadier run only while they fit.

On 1,000 long texts a run trained one student-base and one student-tuned in ~6
minutes, then spent ~11 more on two tie-break folds of the guard (BENCHMARKS.md,
"A step cap for big corpora"). Those extras never make the delivered model worse
when skipped: a tie keeps student-base (as it would after the extra folds tied
too), and a kept student-tuned is delivered as judged instead of refit. So the
run always trains its two students, and then does each extra only if the time it
took the first time still fits in what is left of the budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

BUDGET_MINUTES = 15.0  # a whole run on ~1,000 long texts on 2 cores (issue #17); None or 0: no limit


@dataclass
class Budget:
    """Minutes a run may take from `started`; the seconds each named step took; what was skipped."""

    minutes: float | None = BUDGET_MINUTES
    clock: Callable[[], float] = time.monotonic
    started: float | None = None
    spent: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.minutes is not None and self.minutes < 0:
            raise ValueError(f"a time budget is minutes from now, 0 or more (got {self.minutes}); "
                             "use 0 or None for no limit")
        if self.started is None:
            self.started = self.clock()

    @property
    def limited(self) -> bool:
        return bool(self.minutes)

    def left(self) -> float:
        """Seconds left (negative once overrun); infinite without a limit."""
        if not self.limited:
            return float("inf")
        return self.minutes * 60 - (self.clock() - self.started)

    @contextmanager
    def timed(self, name: str) -> Iterator[None]:
        """Record how long the step `name` took, so a later step like it can be foreseen."""
        start = self.clock()
        yield
        self.spent[name] = self.clock() - start

    def affords(self, steps: tuple[str, ...], what: str) -> bool:
        """Whether one more run of `steps` (as long as they took before) fits; if not, say so."""
        needed = sum(self.spent.get(step, 0.0) for step in steps)
        if needed <= self.left():
            return True
        self.skipped.append(f"{what} skipped: it would take ~{needed:.0f} s and {max(0.0, self.left()):.0f} s "
                            f"of the {self.minutes:g}-minute budget are left")
        return False

    def summary(self) -> dict:
        """For training-logs.json and the run report."""
        return {"minutes": self.minutes or None, "used_s": round(self.clock() - self.started, 1),
                "skipped": list(self.skipped)}
