"""Set-up files agree with each other, so every install route gives one environment."""

from __future__ import annotations

import json
import re
from pathlib import Path

import tomllib
import yaml

ROOT = Path(__file__).resolve().parents[1]


def pyproject() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_environment_yml_lists_the_pyproject_dependencies():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert "python=3.11" in env["dependencies"]
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    assert "-e .[test]" in pip
    assert sorted(p for p in pip if not p.startswith("-e")) == sorted(pyproject()["project"]["dependencies"])


def test_torch_is_pinned_to_the_cpu_wheel():
    assert "torch==2.13.0" in pyproject()["project"]["dependencies"]


def test_readme_starts_with_the_two_commands_and_ci_calls_the_test_one():
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```(?:bash|sh)?\n(.*?)```", readme, flags=re.S)
    assert blocks[0].split() == ["make", "run", "make", "test"]
    assert "make test" in (ROOT / ".ci" / "run").read_text()


def test_model_folder_keeps_only_its_readme_in_git():
    ignore = (ROOT / ".gitignore").read_text().splitlines()
    assert "model/*" in ignore and "!model/README.md" in ignore


def test_notebooks_use_the_python3_kernel():
    for path in (ROOT / "notebooks").glob("*.ipynb"):
        spec = json.loads(path.read_text())["metadata"]["kernelspec"]
        assert spec["name"] == "python3", path
