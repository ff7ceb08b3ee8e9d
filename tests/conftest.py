"""Shared fixtures: tiny task folders written the way spreadsheets save them."""

from __future__ import annotations

import importlib.util
import json
import os
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


def require(available: bool, what: str, fix: str) -> None:
    """Skip a test whose dependency is missing on a learner's machine, but fail it under CI,
    where `.ci/run` installs everything: a silent skip there would hide a broken install."""
    if not available:
        message = f"{what} is missing ({fix})"
        pytest.fail(message) if os.environ.get("CI") else pytest.skip(message)


def require_module(name: str, fix: str) -> None:
    require(importlib.util.find_spec(name.split(".")[0]) is not None and importlib.util.find_spec(name) is not None,
            f"Python module {name}", fix)


@pytest.fixture(scope="module")
def llama_url(tmp_path_factory):
    """The /v1 URL of a real llama.cpp server with SmolLM2, one per test module, stopped after it."""
    from llama_server import free_port, llama_server

    with llama_server(free_port(), tmp_path_factory.mktemp("llama") / "server.log") as (url, _):
        yield url


# Fixtures that load a model (MiniLM, SmolLM2 in-process or in a llama.cpp server): every test that uses
# one is marked slow, so `pytest -m "not slow"` stays a quick check without anyone remembering to mark it.
MODEL_FIXTURES = {"student", "pipe", "server", "trained", "exported", "smollm2", "llama_url"}


def pytest_collection_modifyitems(items) -> None:
    for item in items:
        if MODEL_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.slow)


NOISE = ("Warning", "deprecated", "LOAD REPORT")


def noisy_outputs(notebook: Path) -> list[str]:
    """Output lines of an executed notebook that a learner could not act on.

    Any 'Warning', 'deprecated' or 'LOAD REPORT' (library warnings, FutureWarnings,
    transformers' weight reports): our own messages say WARNING in capitals, in
    plain words, only when the learner can do something about it.
    """
    found = []
    for cell in json.loads(Path(notebook).read_text())["cells"]:
        for output in cell.get("outputs", []):
            text = output.get("text") or "".join(output.get("data", {}).get("text/plain", ""))
            text = "".join(text) if isinstance(text, list) else text
            found += [line[:200] for line in text.splitlines() if any(word in line for word in NOISE)]
    return found


@pytest.fixture
def quiet_notebook():
    """Assert that an executed notebook printed no noise (see `noisy_outputs`)."""
    def check(notebook: Path) -> None:
        noise = noisy_outputs(notebook)
        assert not noise, f"{Path(notebook).name} shows {len(noise)} line(s) of noise:\n" + "\n".join(noise[:10])
    return check
