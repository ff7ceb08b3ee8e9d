"""Deployment helpers against a real (untrained) MiniLM student exported the way training does."""

from __future__ import annotations

import copy
import io
import json
import os
import shutil
import socket
import tarfile
from pathlib import Path

import httpx
import numpy as np
import pytest
import torch

from helpers import deploy, payoff, quantize
from helpers.archive import UnsafeArchive, file_tree, safe_extract
from helpers.export import MODEL_FILES, export_model
from helpers.limits import MAX_WINDOW
from helpers.serve import serve
from helpers.student import load_student, predict_proba

CLASSES = ["refund", "delivery", "account"]
TEXTS = ["I want my money back", "where is my parcel", "reset my password please",
         "the package never arrived", "refund the second charge", "cannot log in"]
LABELS = [0, 1, 2, 1, 0, 2]
# ~580 word pieces: refund words inside the window, delivery words mostly past it
LONG_TEXT = "refund the second charge please. " * 20 + "where is my parcel, it never arrived. " * 60


def fit_head(model, tokenizer) -> None:
    """Train only the classification head on TEXTS (a second on CPU), so the student has
    clear-cut predictions like a trained one instead of a random head's near ties."""
    model.eval()
    with torch.no_grad():
        pooled = model.bert(**tokenizer(TEXTS, padding=True, return_tensors="pt")).pooler_output
    optimiser = torch.optim.Adam(model.classifier.parameters(), lr=0.05)
    for _ in range(100):
        loss = torch.nn.functional.cross_entropy(model.classifier(pooled), torch.tensor(LABELS))
        optimiser.zero_grad()
        loss.backward()
        optimiser.step()


@pytest.fixture(scope="module")
def student(tmp_path_factory):
    """A MiniLM student with a fitted head, exported (folder + tarball) like training does."""
    root = tmp_path_factory.mktemp("exported")
    torch.manual_seed(0)
    tokenizer, model = load_student("minilm", CLASSES, MAX_WINDOW)  # the window long-text tasks get
    fit_head(model, tokenizer)
    tar = root / "shop-model.tar"
    export_model(model, tokenizer, [], {"task": "shop"}, root / "model", tar)
    return {"model": model, "tokenizer": tokenizer, "dir": root / "model", "tar": tar}


@pytest.fixture(scope="module")
def pipe(student):
    return deploy.load_pipeline(student["dir"])


# ---------------------------------------------------------------- safe_extract

def add(tar: tarfile.TarFile, name: str, data: bytes = b"x", **fields) -> None:
    """Add one crafted member (type, linkname... from fields) to an open tarball."""
    info = tarfile.TarInfo(name)
    info.size = len(data) if fields.get("type", tarfile.REGTYPE) == tarfile.REGTYPE else 0
    for key, value in fields.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if info.size else None)


def crafted(path: Path, *members: tuple[str, dict]) -> Path:
    """A tarball with a legitimate model/config.json first, then the given members."""
    with tarfile.open(path, "w") as tar:
        add(tar, "model/config.json", b"{}")
        for name, fields in members:
            add(tar, name, **fields)
    return path


def malicious_cases(outside: Path) -> dict[str, tuple[str, dict]]:
    return {
        "absolute": (str(outside / "evil.txt"), {}),
        "traversal": ("model/../../outside/evil.txt", {}),
        "dotdot-root": ("../outside/evil.txt", {}),
        "outside-model": ("evil.txt", {}),
        "symlink": ("model/link", {"type": tarfile.SYMTYPE, "linkname": str(outside / "evil.txt")}),
        "symlink-dir": ("model/sub", {"type": tarfile.SYMTYPE, "linkname": str(outside)}),
        "hardlink": ("model/hard", {"type": tarfile.LNKTYPE, "linkname": "model/config.json"}),
        "chardev": ("model/null", {"type": tarfile.CHRTYPE, "devmajor": 1, "devminor": 3}),
        "blockdev": ("model/disk", {"type": tarfile.BLKTYPE, "devmajor": 8, "devminor": 0}),
        "fifo": ("model/pipe", {"type": tarfile.FIFOTYPE}),
    }


@pytest.mark.parametrize("case", list(malicious_cases(Path("/x"))))
def test_malicious_archive_is_refused_and_writes_nothing(tmp_path, case):
    outside, dest = tmp_path / "outside", tmp_path / "dest"
    outside.mkdir()
    dest.mkdir()
    (dest / "notes.txt").write_text("mine")
    name, fields = malicious_cases(outside)[case]
    tar = crafted(tmp_path / "evil-model.tar", (name, fields))
    with pytest.raises(UnsafeArchive, match="refusing archive member"):
        safe_extract(tar, dest)
    assert list(outside.iterdir()) == []
    assert sorted(p.name for p in dest.iterdir()) == ["notes.txt"]
    assert (dest / "notes.txt").read_text() == "mine"


def test_unsafe_archive_is_a_value_error_naming_the_member(tmp_path):
    tar = crafted(tmp_path / "evil-model.tar", ("model/../../etc/cron.d/x", {}))
    with pytest.raises(ValueError, match=r"model/\.\./\.\./etc/cron\.d/x"):
        safe_extract(tar, tmp_path / "dest")


def test_archive_too_large_or_without_a_model_is_refused(tmp_path):
    with pytest.raises(UnsafeArchive, match="more than 1 bytes"):
        safe_extract(crafted(tmp_path / "big-model.tar"), tmp_path / "dest", max_bytes=1)
    with tarfile.open(tmp_path / "empty-model.tar", "w") as tar:
        add(tar, "model/notes.txt")
    with pytest.raises(UnsafeArchive, match="no model/config.json"):
        safe_extract(tmp_path / "empty-model.tar", tmp_path / "dest")
    assert list((tmp_path / "dest").iterdir()) == []


def test_symlinked_model_folder_in_dest_is_not_followed(tmp_path):
    outside, dest = tmp_path / "outside", tmp_path / "dest"
    outside.mkdir()
    dest.mkdir()
    (dest / "model").symlink_to(outside)
    with pytest.raises(FileExistsError):
        safe_extract(crafted(tmp_path / "ok-model.tar"), dest)
    assert list(outside.iterdir()) == []


def test_good_archive_round_trips_and_keeps_user_files(student, tmp_path):
    dest = tmp_path / "dest"
    (dest / "model").mkdir(parents=True)
    (dest / "model" / "stale.bin").write_text("old")
    (dest / "model" / "README.md").write_text("my notes")
    (dest / "keep.txt").write_text("mine")
    (dest / "model.old").mkdir()
    model_dir = safe_extract(student["tar"], dest)
    assert model_dir == (dest / "model").resolve()
    assert sorted(p.name for p in model_dir.iterdir()) == sorted([*MODEL_FILES, "README.md"])
    assert (dest / "keep.txt").read_text() == "mine"
    assert sorted(p.name for p in dest.iterdir()) == ["keep.txt", "model", "model.old"]
    assert (model_dir / "README.md").read_text() == "my notes"
    for name in MODEL_FILES:
        assert (model_dir / name).read_bytes() == (student["dir"] / name).read_bytes()
    assert deploy.predict_one(deploy.load_pipeline(model_dir), "refund me")["label"].isin(CLASSES).all()


def test_file_tree_lists_files_with_sizes(student):
    tree = file_tree(student["dir"])
    assert tree.splitlines()[0] == "model/"
    assert "model.safetensors  (" in tree and " MB)" in tree
    assert all(name in tree for name in MODEL_FILES)


# ---------------------------------------------------------------- predictions

def test_pipeline_matches_the_in_memory_student(student, pipe):
    assert [pipe.model.config.id2label[i] for i in range(3)] == CLASSES
    probs = deploy.pipeline_proba(pipe, TEXTS)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-5)
    expected = predict_proba(student["model"], student["tokenizer"], TEXTS)
    np.testing.assert_allclose(probs, expected, atol=1e-5)


def test_a_plain_pipeline_cuts_long_texts_where_training_did(student):
    """What the deployment notebook promises a user who loads model/ with transformers alone:
    with truncation=True a long text is read in its first MAX_WINDOW word pieces, the same
    answer the evaluation (predict_proba at the training window) gave; the untouched
    backbone's tokenizer would read 512 and answer differently."""
    from transformers import AutoModelForSequenceClassification, AutoTokenizer, TextClassificationPipeline

    tokenizer = AutoTokenizer.from_pretrained(student["dir"])
    assert tokenizer.model_max_length == MAX_WINDOW
    plain = TextClassificationPipeline(model=AutoModelForSequenceClassification.from_pretrained(student["dir"]),
                                       tokenizer=tokenizer, top_k=None)
    long_text = LONG_TEXT
    [row] = plain([long_text], truncation=True)
    scores = np.array([{r["label"]: r["score"] for r in row}[c] for c in CLASSES])
    evaluated = predict_proba(student["model"], student["tokenizer"], [long_text], MAX_WINDOW)[0]
    np.testing.assert_allclose(scores, evaluated, atol=1e-5)
    read_more = predict_proba(student["model"], student["tokenizer"], [long_text], 512)[0]
    assert np.abs(read_more - evaluated).max() > 1e-3  # the window decides the answer on this text


def test_one_text_a_csv_and_http_read_a_long_text_in_the_window_the_evaluation_used(student, pipe, server,
                                                                                     tmp_path):
    evaluated = predict_proba(student["model"], student["tokenizer"], [LONG_TEXT], MAX_WINDOW)[0]
    assert np.abs(predict_proba(student["model"], student["tokenizer"], [LONG_TEXT], 512)[0]
                  - evaluated).max() > 1e-3  # the window decides the answer on this text
    one = deploy.predict_one(pipe, LONG_TEXT)
    np.testing.assert_allclose(in_class_order(zip(one["label"], one["probability"])), evaluated, atol=1e-5)
    source = tmp_path / "long.csv"
    source.write_text(f'question\n"{LONG_TEXT}"\n', encoding="utf-8")
    frame, _ = deploy.predict_csv(pipe, source)
    assert frame["probability"][0] == pytest.approx(evaluated.max(), abs=1e-4)  # written rounded to 4 places
    assert frame["prediction"][0] == CLASSES[int(evaluated.argmax())]
    [row] = post(server, {"texts": [LONG_TEXT]}).json()["predictions"]
    np.testing.assert_allclose(in_class_order((r["label"], r["score"]) for r in row), evaluated, atol=1e-4)


def in_class_order(pairs) -> np.ndarray:
    """(label, score) pairs as scores in CLASSES order."""
    scores = dict(pairs)
    return np.array([scores[c] for c in CLASSES])


def test_predict_one_is_a_sorted_probability_table(pipe):
    table = deploy.predict_one(pipe, "where is my parcel")
    assert list(table.columns) == ["label", "probability"]
    assert sorted(table["label"]) == sorted(CLASSES)
    assert table["probability"].is_monotonic_decreasing
    assert table["probability"].sum() == pytest.approx(1.0, abs=1e-5)


def test_predict_csv_writes_beside_the_input_and_escapes_formulas(pipe, tmp_path):
    source = tmp_path / "test.csv"
    source.write_text('question,answer\n"=HYPERLINK(""http://x"",""y"")",refund\n'
                      "+1 charged twice,refund\n@SUM(A1),account\nwhere is my parcel,delivery\n",
                      encoding="utf-8")
    before = source.read_bytes()
    frame, accuracy = deploy.predict_csv(pipe, source)
    out = tmp_path / "test-predictions.csv"
    assert out.exists() and source.read_bytes() == before
    assert frame["text"][0].startswith("=HYPERLINK")
    written = out.read_text(encoding="utf-8").splitlines()
    assert written[0] == "text,answer,prediction,probability,correct"
    assert written[1].startswith("\"'=HYPERLINK") and written[2].startswith("'+1")
    assert written[3].startswith("'@SUM")
    assert accuracy == pytest.approx(frame["correct"].mean())
    assert frame.loc[3, "prediction"] == "delivery" and frame.loc[3, "correct"]
    one_by_one = [deploy.predict_one(pipe, text)["label"][0] for text in frame["text"]]
    assert frame["prediction"].tolist() == one_by_one  # the CSV path answers as a single text does


def test_predict_csv_never_overwrites_its_input(pipe, tmp_path):
    source = tmp_path / "data.csv"
    source.write_text("question\nhello\n")
    with pytest.raises(ValueError, match="over the input"):
        deploy.predict_csv(pipe, source, out_path=tmp_path / "." / "data.csv")
    assert source.read_text() == "question\nhello\n"


def test_predict_csv_without_labels_and_with_other_columns(pipe, tmp_path):
    source = tmp_path / "unlabelled.csv"
    source.write_text("Context;other\nparcel missing;1\n\nrefund please;2\n")
    frame, accuracy = deploy.predict_csv(pipe, source, out_path=tmp_path / "out.csv")
    assert accuracy is None and len(frame) == 2 and (tmp_path / "out.csv").exists()
    (tmp_path / "bad.csv").write_text("sentence\nhi\n")
    with pytest.raises(ValueError, match="question, context, text"):
        deploy.predict_csv(pipe, tmp_path / "bad.csv")


def test_predict_csv_reads_labels_as_training_does(pipe, tmp_path):
    source = tmp_path / "test.csv"
    source.write_text("question,answer\nwhere is my parcel, Delivery \nthe package never arrived,DELIVERY\n")
    frame, accuracy = deploy.predict_csv(pipe, source, out_path=tmp_path / "out.csv")
    assert frame["prediction"].tolist() == ["delivery", "delivery"]
    assert frame["correct"].tolist() == [True, True] and accuracy == 1.0


def test_predict_csv_refuses_labels_the_model_does_not_know(pipe, tmp_path):
    source = tmp_path / "test.csv"
    source.write_text("question,answer\nmy card was declined,declined_card\nATM fee,cash_withdrawal_charge\n")
    with pytest.raises(deploy.CsvError) as info:
        deploy.predict_csv(pipe, source)
    message = str(info.value)
    assert "2 row(s) have answers that are not this model's classes" in message
    assert "row 2: 'declined_card'" in message and "another task" in message and "refund, delivery" in message
    assert not (tmp_path / "test-predictions.csv").exists()


@pytest.mark.parametrize("case", ["fifo", "binary", "unquoted comma", "folder"])
def test_predict_csv_is_as_strict_as_training(pipe, tmp_path, case):
    source = tmp_path / "input.csv"
    if case == "fifo":
        os.mkfifo(source)
    elif case == "binary":
        source.write_bytes(b"question\nhello\n" + b"\x00\x01" * 10)
    elif case == "unquoted comma":
        source.write_text("question,answer\nblue, not red,refund\n")
    else:
        source.mkdir()
    expected = {"fifo": "named pipe", "binary": "binary data", "unquoted comma": "row 2: 3 cells where 2",
                "folder": "is a folder"}[case]
    with pytest.raises(deploy.CsvError, match=expected):
        deploy.predict_csv(pipe, source, out_path=tmp_path / "out.csv")


# ---------------------------------------------------------------- speed and size

def test_measure_latency_reports_positive_numbers(student, pipe):
    for target, tokenizer in ((pipe, None), (student["model"], student["tokenizer"])):
        stats = deploy.measure_latency(target, TEXTS, tokenizer=tokenizer, runs=5, warmup=1, batch_size=8,
                                       size_path=student["dir"])
        assert set(stats) == {"p50_ms", "p95_ms", "texts_per_second", "size_mb"}
        assert all(value > 0 for value in stats.values())
        assert stats["p95_ms"] >= stats["p50_ms"]
    assert deploy.measure_latency(pipe, TEXTS, runs=2, warmup=0)["size_mb"] > 80


@pytest.fixture(scope="module")
def onnx_dir(student):
    """The int8 copy beside the fixture model, where the notebook puts it (with a stale fp32
    model.onnx as older versions left it, which the export must remove)."""
    out = quantize.onnx_dir_for(student["dir"])
    out.mkdir()
    (out / "model.onnx").write_bytes(b"stale fp32 export")
    quantize.export_onnx_int8(student["dir"], out)
    return out


def test_onnx_export_ships_only_the_int8_file(student, onnx_dir):
    assert sorted(p.name for p in onnx_dir.iterdir()) == sorted(
        [quantize.ONNX_FILE, quantize.SOURCE_FILE, *quantize.TOKENIZER_FILES])
    assert (onnx_dir / quantize.ONNX_FILE).stat().st_size < (student["dir"] / "model.safetensors").stat().st_size / 3
    assert quantize.matches(onnx_dir, student["dir"])


def recording(pipe, asked: list[str]):
    """A fallback answering with the pipeline's probabilities that notes every text it is asked."""
    return lambda batch: asked.extend(batch) or deploy.pipeline_proba(pipe, batch)


def test_the_payoff_table_puts_the_teacher_timed_at_training_beside_both_students(student, onnx_dir, pipe):
    logs_path = student["dir"] / "training-logs.json"
    before = logs_path.read_text()
    onnx = quantize.OnnxClassifier(onnx_dir)
    texts, labels = TEXTS * 3, [CLASSES[0]] * len(TEXTS) * 3
    alone = payoff.payoff_table(student["dir"], pipe, onnx, texts, labels, runs=3)
    assert list(alone.index) == ["student fp32 (PyTorch)", "student int8 (ONNX)"]  # old logs: no teacher timing
    timed = {"p50_ms": 900.0, "p95_ms": 1500.0, "texts_per_second": 1.2, "size_mb": 94.0}
    logs_path.write_text(json.dumps({"task": "shop", "teacher": "local:smollm2-135m", "teacher_speed": timed,
                                     "evaluation": [{"model": "teacher", "accuracy": 0.5}]}))
    try:
        table = payoff.payoff_table(student["dir"], pipe, onnx, texts, labels, runs=3)
    finally:
        logs_path.write_text(before)
    assert table.index[0] == "teacher (local:smollm2-135m), timed at training"
    assert table.iloc[0][["p50_ms", "size_mb", "accuracy"]].tolist() == [900.0, 94.0, 0.5]
    fp32, int8 = table.loc["student fp32 (PyTorch)"], table.loc["student int8 (ONNX)"]
    right = np.mean([row[0]["label"] == CLASSES[0] for row in pipe(texts)])
    assert fp32["accuracy"] == pytest.approx(right) and fp32["agreement"] == 1.0
    assert int8["agreement"] == 1.0 and int8["size_mb"] < fp32["size_mb"] / 3
    assert (table.loc[:, ["p50_ms", "p95_ms", "texts_per_second"]] > 0).all().all()
    asked = []
    rechecked = quantize.OnnxClassifier(onnx_dir, recheck_margin=1.0, fallback=recording(pipe, asked))  # every text
    both = payoff.payoff_table(student["dir"], pipe, rechecked, texts, labels, runs=3)
    assert list(both.index) == ["student fp32 (PyTorch)", "student int8 (ONNX)", payoff.RECHECKED]
    assert len(asked) == rechecked.answered > len(texts)  # timed runs included; int8 alone never asks
    row = both.loc[payoff.RECHECKED]
    assert row["agreement"] == 1.0 and row["size_mb"] == pytest.approx(fp32["size_mb"] + int8["size_mb"])
    assert both.loc["student int8 (ONNX)", "size_mb"] == pytest.approx(int8["size_mb"])


def test_onnx_classifier_has_the_pipelines_api_and_window(pipe, onnx_dir):
    """Same call, same answer shape, same truncation at the window; a batch mixing long and
    short texts (sorted by length inside) comes back in the order it was sent. Dynamic int8
    takes its activation scale from the whole batch, so a short text's scores move a little with
    its neighbours, but not its class (long texts run alone: the next test)."""
    onnx = quantize.OnnxClassifier(onnx_dir)
    long_text = "my parcel never arrived and " * 200  # far past the 256-token window
    texts = [long_text, "refund please", "where is my parcel " * 20, "cannot log in"]
    rows = onnx(texts)
    assert [len(row) for row in rows] == [3] * 4
    assert all(row[0]["score"] >= row[-1]["score"] for row in rows)
    expected = pipe(texts)
    assert [row[0]["label"] for row in rows] == [row[0]["label"] for row in expected]
    together = onnx.predict_proba(texts, batch_size=2)
    alone = np.concatenate([onnx.predict_proba([text]) for text in texts])
    assert (together.argmax(1) == alone.argmax(1)).all()
    np.testing.assert_allclose(together, alone, atol=0.1)
    np.testing.assert_allclose(onnx.predict_proba(texts, batch_size=1), alone, atol=1e-5)
    expected_ids = pipe.tokenizer(texts, truncation=True)["input_ids"]
    assert [e.ids for e in onnx.tokenizer.encode_batch(texts)] == expected_ids
    assert len(expected_ids[0]) == MAX_WINDOW
    assert deploy.class_names(onnx) == deploy.class_names(pipe) == CLASSES


def test_a_long_text_gets_the_same_int8_scores_whatever_its_neighbours(onnx_dir):
    """Texts over `quantize.ALONE_ABOVE` word pieces run alone (batching them buys little speed), so
    their int8 scores do not move with the rest of a CSV; short texts still share batches, in
    length order, ``batch_size`` at most."""
    onnx = quantize.OnnxClassifier(onnx_dir)
    long_texts = ["my parcel never arrived and " * 40, "the refund you promised is still missing, " * 30]
    texts = [long_texts[0], "refund please", long_texts[1], "cannot log in", "where is my parcel " * 10]
    assert all(len(e.ids) > quantize.ALONE_ABOVE for e in onnx.tokenizer.encode_batch(long_texts))
    mixed = onnx.predict_proba(texts, batch_size=32)
    for row, text in ((0, long_texts[0]), (2, long_texts[1])):
        np.testing.assert_allclose(mixed[row], onnx.predict_proba([text])[0], atol=1e-7)
    groups = quantize.batches([300, 5, 200, 9, 40, 7, 129, 128], batch_size=2)
    assert [list(g) for g in groups] == [[1, 5], [3, 4], [7], [6], [2], [0]]


def test_near_ties_get_the_fp32_answer_and_the_rest_keep_int8s(pipe, onnx_dir):
    """The fallback answers exactly the texts whose int8 gap between the two likeliest classes is
    under the margin: with every text under it the scores are PyTorch's, with none they are int8's."""
    texts = TEXTS + ["my parcel never arrived and " * 60, "refund", "cannot log in to my account today"]
    fp32 = deploy.pipeline_proba(pipe, texts)
    int8 = quantize.OnnxClassifier(onnx_dir).predict_proba(texts, batch_size=1)  # batch-independent scores
    assert np.abs(int8 - fp32).max() > 1e-4  # int8 alone does not give fp32's scores
    top_two = np.sort(int8, axis=1)[:, -2:]
    gaps = top_two[:, 1] - top_two[:, 0]
    margin = float(np.sort(gaps)[3:5].mean())  # four texts are near ties at this margin
    asked = []
    onnx = quantize.OnnxClassifier(onnx_dir, recheck_margin=margin, fallback=recording(pipe, asked))
    mixed = onnx.predict_proba(texts, batch_size=1)
    close = gaps < margin
    assert close.sum() == onnx.rechecked == 4
    assert sorted(asked) == sorted(t for t, near in zip(texts, close) if near)
    np.testing.assert_allclose(mixed[close], fp32[close], atol=1e-6)
    np.testing.assert_allclose(mixed[~close], int8[~close], atol=1e-6)
    everything = quantize.OnnxClassifier(onnx_dir, recheck_margin=1.0,
                                         fallback=lambda batch: deploy.pipeline_proba(pipe, batch))
    assert [row[0]["label"] for row in everything(texts)] == [row[0]["label"] for row in pipe(texts)]


def test_a_gap_shift_bounds_every_flip():
    """int8 picks another class than fp32 only where it narrowed a gap by more than its own top-two gap,
    so a margin over every shift seen rechecks every flip of that size."""
    rng = np.random.default_rng(0)
    fp32 = rng.dirichlet(np.ones(5), size=2000)
    int8 = np.clip(fp32 + rng.normal(0, 0.05, fp32.shape), 1e-6, None)
    int8 /= int8.sum(axis=1, keepdims=True)
    shifts, top_two = quantize.gap_shifts(int8, fp32), np.sort(int8, axis=1)[:, -2:]
    flipped = int8.argmax(axis=1) != fp32.argmax(axis=1)
    assert flipped.sum() > 20 and (shifts[flipped] > (top_two[:, 1] - top_two[:, 0])[flipped]).all()
    assert (shifts >= 0).all()
    one = quantize.gap_shifts(np.array([[0.5, 0.4, 0.1], [0.7, 0.2, 0.1]]),
                              np.array([[0.42, 0.48, 0.1], [0.8, 0.1, 0.1]]))
    np.testing.assert_allclose(one, [0.16, 0.0], atol=1e-9)  # the second: int8 only widened the gaps


def test_the_export_measures_each_models_margin_and_serving_uses_it(student, pipe, tmp_path):
    """A margin from the model's own texts: recorded in source.json, served by default, overridable, and
    larger for a model that int8 moves more (here a perturbed fp32 model against the same int8 copy)."""
    texts = TEXTS + ["my parcel never arrived and " * 60, "refund", "cannot log in to my account today",
                     "the courier left it at the wrong door and now the refund form will not load"]
    model_dir = tmp_path / "model"
    shutil.copytree(student["dir"], model_dir)
    onnx_dir = quantize.onnx_dir_for(model_dir)
    quantize.export_onnx_int8(model_dir, onnx_dir, texts)
    source = json.loads((onnx_dir / quantize.SOURCE_FILE).read_text())

    def rule(calibration: dict) -> float:
        return min(1.0, max(quantize.RECHECK_MARGIN, quantize.HEADROOM * calibration["largest_gap_shift"]))

    assert source["calibration"]["texts"] == len(texts) and source["recheck_margin"] == pytest.approx(
        rule(source["calibration"]), abs=1e-3)
    local = deploy.load_pipeline(model_dir)
    served = deploy.load_model(model_dir, pipe=local)
    assert served.recheck_margin == quantize.recorded_margin(onnx_dir) == source["recheck_margin"]
    assert deploy.load_model(model_dir, recheck_margin=0.3).recheck_margin == 0.3
    (onnx_dir / quantize.SOURCE_FILE).write_text(json.dumps(source | {"recheck_margin": 0.42}))
    assert deploy.load_model(model_dir, pipe=local).recheck_margin == 0.42  # not the default
    (onnx_dir / quantize.SOURCE_FILE).write_text(json.dumps(source))
    for batch_size in (1, 32):  # every flip on these texts is rechecked, alone or batched
        assert (served.predict_proba(texts, batch_size).argmax(1) == deploy.pipeline_proba(pipe, texts).argmax(1)).all()
    fragile = copy.deepcopy(student["model"])
    with torch.no_grad():
        fragile.classifier.weight.mul_(torch.linspace(0.5, 1.5, fragile.classifier.weight.shape[0])[:, None])
    loud = quantize.calibrate_margin(onnx_dir, fragile, student["tokenizer"], texts)
    assert loud["calibration"]["largest_gap_shift"] > 2 * source["calibration"]["largest_gap_shift"]
    assert loud["recheck_margin"] > quantize.RECHECK_MARGIN and loud["recheck_margin"] == pytest.approx(
        rule(loud["calibration"]), abs=1e-3)


def test_load_model_reuses_a_loaded_pipeline_and_alone_drops_the_fallback(student, onnx_dir, pipe, monkeypatch):
    """The notebook's pipeline becomes the fallback without the weights being read again; a
    pipeline of other weights is refused; `alone()` answers with int8 only, as a fresh int8 model."""
    monkeypatch.setattr(deploy, "load_pipeline", lambda folder: pytest.fail("loaded the weights again"))
    texts = TEXTS + ["my parcel never arrived and " * 60, "refund"]
    served = deploy.load_model(student["dir"], pipe=pipe, recheck_margin=1.0)  # every text is rechecked
    np.testing.assert_allclose(served.predict_proba(texts), deploy.pipeline_proba(pipe, texts), atol=1e-6)
    assert served.rechecked == len(texts)
    assert deploy.load_model(student["dir"], "pytorch", pipe=pipe) is pipe
    single = served.alone()
    np.testing.assert_allclose(single.predict_proba(texts), quantize.OnnxClassifier(onnx_dir).predict_proba(texts),
                               atol=1e-6)
    assert (single.fallback, single.rechecked, served.rechecked) == (None, 0, len(texts))
    with pytest.raises(ValueError, match="pipe was loaded from"):
        deploy.load_model(student["dir"].parent / "elsewhere" / "model", pipe=pipe)


def test_load_model_serves_int8_only_when_it_matches_the_weights(student, onnx_dir, tmp_path):
    served = deploy.load_model(student["dir"])
    assert isinstance(served, quantize.OnnxClassifier) and served.fallback is not None
    assert served.recheck_margin == quantize.RECHECK_MARGIN
    assert deploy.load_model(student["dir"], recheck_margin=0).fallback is None  # int8 alone
    assert isinstance(deploy.load_model(student["dir"], "pytorch"), deploy.TextClassificationPipeline)
    copy = tmp_path / "model"
    shutil.copytree(student["dir"], copy)
    shutil.copytree(onnx_dir, tmp_path / "model-onnx")
    with open(copy / "model.safetensors", "r+b") as weights:  # retrained: other weights, same name
        weights.seek(-4, os.SEEK_END)
        weights.write(b"\x00\x00\x80\x3f")
    assert not quantize.matches(tmp_path / "model-onnx", copy)
    assert isinstance(deploy.load_model(copy), deploy.TextClassificationPipeline)
    older = tmp_path / "older"  # same weights, int8 made by an earlier export recipe
    shutil.copytree(student["dir"], older / "model")
    shutil.copytree(onnx_dir, older / "model-onnx")
    source = older / "model-onnx" / quantize.SOURCE_FILE
    source.write_text(source.read_text().replace(quantize.RECIPE, "dynamic-int8-per-tensor"))
    assert not quantize.matches(older / "model-onnx", older / "model")
    with pytest.raises(FileNotFoundError, match="export_onnx_int8"):
        deploy.load_model(student["dir"].parent / "elsewhere" / "model", "onnx")
    with pytest.raises(ValueError, match="'auto', 'onnx' or 'pytorch'"):
        deploy.load_model(student["dir"], "tensorrt")


def test_predict_csv_and_predict_one_work_with_the_int8_model(pipe, onnx_dir, tmp_path):
    source = tmp_path / "test.csv"
    source.write_text("question,answer\nwhere is my parcel,delivery\nreset my password please,account\n")
    onnx = quantize.OnnxClassifier(onnx_dir)
    frame, accuracy = deploy.predict_csv(onnx, source)
    expected, expected_accuracy = deploy.predict_csv(pipe, source, out_path=tmp_path / "torch.csv")
    assert frame["prediction"].tolist() == expected["prediction"].tolist() and accuracy == expected_accuracy
    table = deploy.predict_one(onnx, "where is my parcel")
    assert list(table.columns) == ["label", "probability"] and table["probability"].is_monotonic_decreasing


# ---------------------------------------------------------------- HTTP server

@pytest.fixture(scope="module")
def server(pipe):
    handle = serve(pipe, max_batch=4, max_body_bytes=10_000)
    yield handle
    handle.stop()


def post(server, body=None, **kwargs) -> httpx.Response:
    return httpx.post(server.url + "/predict", json=body, timeout=30, **kwargs)


def test_server_binds_localhost_and_answers_health(server):
    assert server.host == "127.0.0.1" and server.url.startswith("http://127.0.0.1:")
    assert httpx.get(server.url + "/health", timeout=10).json() == {"status": "ok", "num_labels": 3,
                                                                     "backend": "pytorch"}


def test_predict_returns_sorted_scores_per_text(server):
    response = post(server, {"texts": ["where is my parcel", "refund please"]})
    assert response.status_code == 200
    predictions = response.json()["predictions"]
    assert len(predictions) == 2
    for row in predictions:
        assert sorted(r["label"] for r in row) == sorted(CLASSES)
        scores = [r["score"] for r in row]
        assert scores == sorted(scores, reverse=True) and sum(scores) == pytest.approx(1, abs=1e-4)


@pytest.mark.parametrize("body, status, words", [
    ({"texts": ["fine", "  "]}, 422, "texts[1] is empty"),
    ({"texts": []}, 422, "is empty"),
    ({"texts": "SECRET-VALUE-123"}, 422, "valid list"),
    ({"texts": [42]}, 422, "valid string"),
    ({}, 422, "'texts' is required"),
    ([1, 2], 422, "JSON object"),
    ({"texts": ["a"] * 5}, 422, "at most 4"),
    ({"texts": ["a" * 20_000]}, 413, "over the limit"),
])
def test_bad_requests_get_a_json_4xx(server, body, status, words):
    response = post(server, body)
    assert response.status_code == status
    assert words in response.json()["error"]
    assert "SECRET-VALUE-123" not in response.text


def test_oversized_chunked_body_gets_413(server):
    chunks = (b"x" * 4_000 for _ in range(5))
    response = httpx.post(server.url + "/predict", content=chunks, timeout=30,
                          headers={"content-type": "application/json"})
    assert response.status_code == 413 and "error" in response.json()


def test_not_json_gets_422(server):
    response = post(server, content=b"texts=hello", headers={"content-type": "application/json"})
    assert response.status_code == 422 and "JSON object" in response.json()["error"]


def test_a_model_folder_is_served_by_its_int8_copy_with_the_same_answers(student, onnx_dir, server):
    texts = ["where is my parcel", "refund the second charge", "cannot log in " * 100]
    with serve(student["dir"], name="int8") as handle:
        health = httpx.get(handle.url + "/health", timeout=10).json()
        assert (health["backend"], health["recheck_margin"]) == ("onnx-int8", quantize.RECHECK_MARGIN)
        int8 = post(handle, {"texts": texts}).json()["predictions"]
    with serve(student["dir"], name="int8 alone", recheck_margin=0) as handle:
        assert httpx.get(handle.url + "/health", timeout=10).json()["recheck_margin"] == 0
    torch_answers = post(server, {"texts": texts[:2]}).json()["predictions"]
    assert [row[0]["label"] for row in int8[:2]] == [row[0]["label"] for row in torch_answers]
    assert [row[0]["label"] for row in int8] == ["delivery", "refund", "account"]


def test_serving_again_under_a_name_stops_the_old_server(pipe):
    first = serve(pipe, name="cell")
    second = serve(pipe, name="cell")  # re-running the notebook cell
    try:
        assert not first.thread.is_alive()
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection((first.host, first.port), timeout=5)
        assert httpx.get(second.url + "/health", timeout=10).status_code == 200
    finally:
        second.stop()
    other = serve(pipe, name="other")
    with serve(pipe, name="another"):
        assert httpx.get(other.url + "/health", timeout=10).status_code == 200
    other.stop()


def test_stop_frees_the_port(student):
    handle = serve(student["dir"], backend="pytorch")
    assert httpx.get(handle.url + "/health", timeout=10).status_code == 200
    handle.stop()
    assert not handle.thread.is_alive()
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection((handle.host, handle.port), timeout=5)
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((handle.host, handle.port))


# ---------------------------------------------------------------- notebook

@pytest.mark.slow
def test_deployment_notebook_runs_headless(student, tmp_path, quiet_notebook):
    """The notebook end to end (papermill) against the fixture model, ONNX step included."""
    import papermill

    test_csv = tmp_path / "test.csv"
    rows = "".join(f"{text},{CLASSES[label]}\n" for text, label in zip(TEXTS, LABELS, strict=True))
    test_csv.write_text("question,answer\n" + rows)
    notebook = Path(__file__).resolve().parents[1] / "notebooks" / "classification-model-deployment.ipynb"
    papermill.execute_notebook(
        str(notebook), str(tmp_path / "out.ipynb"), cwd=str(notebook.parent), progress_bar=False,
        parameters={"MODEL_TAR": str(student["tar"]), "MODEL_DIR": str(tmp_path / "deployed" / "model"),
                    "TEST_CSV": str(test_csv), "RUN_ONNX": True})
    assert (tmp_path / "deployed" / "model" / "model.safetensors").exists()
    assert (tmp_path / "deployed" / "model-onnx" / "model-int8.onnx").exists()
    assert not (tmp_path / "deployed" / "model-onnx" / "model.onnx").exists()
    executed = (tmp_path / "out.ipynb").read_text()
    assert "'backend': 'onnx-int8'" in executed and "'recheck_margin': 0.15" in executed
    assert "student int8 (ONNX), PyTorch for near ties" in executed and "near ties)" in executed
    assert "<th>student int8 (ONNX)</th>" in executed  # int8 alone has a row of its own too
    assert (tmp_path / "test-predictions.csv").exists()
    quiet_notebook(tmp_path / "out.ipynb")
