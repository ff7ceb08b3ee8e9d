"""The notebooks are stored clean: stripped by nbstripout, lint-free under the pinned ruff rules,
one `parameters` cell each, and the standard `python3` kernel.

Each check is shown to bite: a dirty copy in a temporary folder must make it fail.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from importlib.metadata import version
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PYPROJECT = ROOT / "pyproject.toml"
TRAINING = ROOT / "notebooks" / "classification-training.ipynb"


def run(*args: str, cwd: Path = ROOT) -> subprocess.CompletedProcess:
    """A tool of this venv as a module, so the test does not depend on PATH."""
    return subprocess.run([sys.executable, "-m", *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def nbstripout_verify(*paths: Path) -> subprocess.CompletedProcess:
    # --keep-id: cell ids are part of nbformat 4.5 and stay as saved. Without it nbstripout renumbers
    # them "0", "1", ... and --verify fails on every notebook saved by JupyterLab or nbformat.
    return run("nbstripout", "--verify", "--keep-id", *map(str, paths))


def ruff_check(*paths: Path) -> subprocess.CompletedProcess:
    # --config: the rules in pyproject.toml, also for copies outside the repository; --no-cache: write nothing.
    return run("ruff", "check", "--no-cache", "--config", str(PYPROJECT), *map(str, paths))


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS] == ["classification-model-deployment.ipynb",
                                           "classification-training.ipynb"]


def test_notebooks_are_stored_stripped():
    result = nbstripout_verify(*NOTEBOOKS)
    assert result.returncode == 0, ("run `.venv/bin/nbstripout --keep-id notebooks/*.ipynb` before committing:\n"
                                    + result.stdout + result.stderr)


def test_notebooks_are_valid_nbformat_with_cell_ids():
    """A cell added by hand without an ``id`` makes nbformat warn in every papermill run (and
    fail in a future nbformat); validation catches it before a learner sees the warning."""
    import nbformat

    for path in NOTEBOOKS:
        raw = json.loads(path.read_text())  # as saved: nbformat.read would fill in missing ids
        ids = [cell.get("id") for cell in raw["cells"]]
        assert None not in ids and len(set(ids)) == len(ids), path.name
        nbformat.validate(nbformat.from_dict(raw))


def test_nbstripout_verify_catches_an_unstripped_notebook(tmp_path):
    nb = json.loads(TRAINING.read_text())
    code = next(c for c in nb["cells"] if c["cell_type"] == "code")
    code["execution_count"] = 1
    code["outputs"] = [{"output_type": "stream", "name": "stdout", "text": ["hello\n"]}]
    dirty = tmp_path / TRAINING.name
    dirty.write_text(json.dumps(nb, indent=1))
    assert nbstripout_verify(dirty).returncode != 0


def test_ruff_is_the_pinned_version():
    """The rule set is pinned by the ruff version in the test extra plus [tool.ruff] in pyproject.
    (Read with a regex: tomllib needs Python 3.11 and the project supports 3.10.)"""
    text = PYPROJECT.read_text()
    pins = re.findall(r'"ruff\s*==\s*([\w.]+)"', text)
    assert len(pins) == 1, "pin ruff exactly once in the test extra, e.g. \"ruff==0.17.6\""
    assert version("ruff") == pins[0], "pip install -e '.[test]' to get the pinned ruff"
    select = re.search(r"^select\s*=\s*\[(.*?)\]", text, re.M)
    assert select and '"ALL"' not in select.group(1) and '"F"' in select.group(1), "[tool.ruff.lint] select"


def test_notebook_cells_pass_ruff():
    result = ruff_check(*NOTEBOOKS)
    assert result.returncode == 0, result.stdout + result.stderr


def test_ruff_catches_an_unused_import_and_an_undefined_name(tmp_path):
    nb = json.loads(TRAINING.read_text())
    nb["cells"].append({"cell_type": "code", "execution_count": None, "id": "lint-bait", "metadata": {},
                        "outputs": [], "source": ["import os\n", "print(not_defined_anywhere)\n"]})
    bad = tmp_path / TRAINING.name
    bad.write_text(json.dumps(nb, indent=1))
    result = ruff_check(bad)
    assert result.returncode != 0
    assert "F401" in result.stdout and "F821" in result.stdout, result.stdout


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_exactly_one_parameters_cell(path):
    cells = json.loads(path.read_text())["cells"]
    tagged = [c for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])]
    assert len(tagged) == 1, f"{path.name}: {len(tagged)} cells tagged 'parameters'"
    assert tagged[0]["cell_type"] == "code"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_kernel_is_python3(path):
    kernelspec = json.loads(path.read_text())["metadata"].get("kernelspec", {})
    assert kernelspec.get("name") == "python3", kernelspec
    assert kernelspec.get("language") == "python", kernelspec


def test_tools_are_installed():
    """A missing tool would otherwise show up as a confusing non-zero exit above."""
    for module in ("nbstripout", "ruff"):
        result = run(module, "--version")
        assert result.returncode == 0, f"{module}: {result.stderr}"
