"""Artefacts are safe to share: safetensors only, no secrets in what a run writes."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import make_task

from helpers.distill import DistillResult
from helpers.export import export_model
from helpers.pipeline import metadata
from helpers.student import StudentConfig, load_student
from helpers.task import load_task

SECRET = "sk-test-DO-NOT-LEAK-1234567890"


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    tokenizer, model = load_student("minilm", ["a", "b"])
    return export_model(model, tokenizer, [], {"task": "t"}, tmp_path_factory.mktemp("m") / "model")


def test_only_safetensors_are_written(exported):
    names = [p.name for p in exported.iterdir()]
    assert "model.safetensors" in names
    assert not [n for n in names if n.endswith((".bin", ".pt", ".pth", ".pkl", ".pickle", ".ckpt"))]


def test_exported_model_loads_without_unpickling(exported, monkeypatch):
    from transformers import AutoModelForSequenceClassification

    def refuse(*args, **kwargs):
        raise AssertionError("torch.load (pickle) was called")

    monkeypatch.setattr(torch, "load", refuse)
    model = AutoModelForSequenceClassification.from_pretrained(exported)
    assert model.config.id2label == {0: "a", 1: "b"}


def test_api_key_never_reaches_run_metadata(tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", SECRET)
    task = load_task(make_task(tmp_path / "data-shop"))
    student = type("S", (), {})()
    result = DistillResult(student, None, "student-base", None, [], {"seed_rows": 4})
    info = metadata(task, "openai:gpt-4o-mini@https://api.example/v1", StudentConfig(), result, [], None)
    assert SECRET not in json.dumps(info, default=str)
    assert info["teacher"] == "openai:gpt-4o-mini@https://api.example/v1"
