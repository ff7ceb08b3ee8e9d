"""An append-only on-disk cache of teacher answers (JSON lines).

Appending one line per answer means a killed process loses nothing already
written; a torn last line is skipped on the next read. The key includes the
teacher id (model + prompt version) and the class list, so changing either
starts a fresh set of answers rather than reusing stale ones.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np


class LabelCache:
    """Teacher answers for one teacher id and class list."""

    def __init__(self, directory: str | Path, teacher_id: str, classes: list[str]):
        self.namespace = hashlib.sha256(json.dumps([teacher_id, classes]).encode()).hexdigest()[:16]
        self.path = Path(directory) / f"teacher-{self.namespace}.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.entries = self.read()

    @staticmethod
    def key(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    def read(self) -> dict[str, tuple[np.ndarray, bool]]:
        entries: dict[str, tuple[np.ndarray, bool]] = {}
        if not self.path.exists():
            return entries
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                item = json.loads(line)
                entries[item["key"]] = (np.asarray(item["probs"], dtype=float), bool(item["valid"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue  # a line torn by a crash mid-write
        return entries

    def get(self, text: str) -> tuple[np.ndarray, bool] | None:
        return self.entries.get(self.key(text))

    def put(self, text: str, probs: np.ndarray, valid: bool) -> None:
        key = self.key(text)
        self.entries[key] = (np.asarray(probs, dtype=float), bool(valid))
        line = json.dumps({"key": key, "probs": [round(float(p), 6) for p in probs], "valid": bool(valid)})
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()

    def __len__(self) -> int:
        return len(self.entries)
