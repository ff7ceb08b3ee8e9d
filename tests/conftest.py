"""Shared fixtures: tiny task folders written the way spreadsheets save them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CLASSES = {"refund": "The customer wants money back.", "delivery": "Where is my parcel."}
TRAIN = [("I want my money back", "refund"), ("please refund the order", "refund"),
         ("parcel has not arrived", "delivery"), ("where is my package", "delivery")]
TEST = [("can I get a refund", "refund"), ("my order is late", "delivery")]
CONTEXT = ["package stuck in transit", "refund still not processed", "hello there"]


def write_csv(path: Path, header: str, rows: list[tuple[str, ...]] | list[str], *,
              sep: str = ",", newline: str = "\n", encoding: str = "utf-8") -> Path:
    """Write a CSV by hand (not with pandas) so tests control every byte."""
    def cell(value: str) -> str:
        needs = any(ch in value for ch in (sep, '"', "\n", "\r"))
        return '"' + value.replace('"', '""') + '"' if needs else value
    lines = [header.replace(",", sep)]
    for row in rows:
        row = (row,) if isinstance(row, str) else row
        lines.append(sep.join(cell(v) for v in row))
    path.write_bytes((newline.join(lines) + newline).encode(encoding))
    return path


def make_task(root: Path, *, classes: dict | None = None, train=None, test=None, context=None) -> Path:
    """A valid two-class task folder; pass pieces to override."""
    root.mkdir(parents=True, exist_ok=True)
    job = {"task_description": "Route shop emails.", "classes_description": classes or CLASSES}
    (root / "job_description.json").write_text(json.dumps(job, indent=2), encoding="utf-8")
    write_csv(root / "train.csv", "question,answer", TRAIN if train is None else train)
    write_csv(root / "test.csv", "question,answer", TEST if test is None else test)
    write_csv(root / "unstructured.csv", "context", CONTEXT if context is None else context)
    return root


@pytest.fixture
def task_dir(tmp_path: Path) -> Path:
    return make_task(tmp_path / "data-shop")
