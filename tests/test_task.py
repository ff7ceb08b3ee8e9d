"""Loading and validating task folders as spreadsheets save them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import CONTEXT, TEST, TRAIN, make_task, write_csv

from helpers.limits import LONG_TEXT_WORDS, MAX_WINDOW, words_in
from helpers.problems import TaskError
from helpers.task import inspect_task, load_task


def errors_of(directory: Path) -> list:
    with pytest.raises(TaskError) as info:
        load_task(directory)
    return info.value.problems


def only_error(directory: Path):
    problems = errors_of(directory)
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0]


def warnings_of(directory: Path) -> list:
    return load_task(directory).warnings


# ---- what spreadsheets write is accepted -------------------------------------------------------

def test_valid_task_loads(task_dir):
    task = load_task(task_dir)
    assert task.name == "shop"
    assert task.classes == ["refund", "delivery"]
    assert list(task.train.columns) == ["row", "text", "label"]
    assert task.train["row"].tolist() == [2, 3, 4, 5]
    assert task.test["label"].tolist() == ["refund", "delivery"]
    assert task.unstructured["text"].tolist() == CONTEXT
    assert task.warnings == []


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
def test_bom_encodings(task_dir, encoding):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [("café crème refund", "refund")],
              encoding=encoding)
    assert "café crème refund" in load_task(task_dir).train["text"].tolist()


def test_cp1252_falls_back_with_warning(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [("naïve refund £5", "refund")],
              encoding="cp1252")
    task = load_task(task_dir)
    assert "naïve refund £5" in task.train["text"].tolist()
    assert any("Windows-1252" in p.message and p.file == "train.csv" for p in task.warnings)


@pytest.mark.parametrize("sep", [";", "\t"])
def test_semicolon_and_tab_with_crlf(task_dir, sep):
    rows = TRAIN + [("refund; please, now", "refund")]
    write_csv(task_dir / "train.csv", "question,answer", rows, sep=sep, newline="\r\n")
    assert load_task(task_dir).train["text"].tolist()[-1] == "refund; please, now"


def test_multiline_cells_keep_spreadsheet_row_numbers(task_dir):
    rows = [("line one\nline two refund", "refund")] + TRAIN
    write_csv(task_dir / "train.csv", "question,answer", rows, newline="\r\n")
    train = load_task(task_dir).train
    assert train["text"][0] == "line one\nline two refund"
    assert train["row"].tolist() == [2, 3, 4, 5, 6]


def test_trailing_empty_rows_columns_whitespace_and_header_case(task_dir):
    text = "Question , ANSWER,,\n" + "".join(f"{q}, {a} ,,\n" for q, a in TRAIN) + ",,,\n,,,\n"
    (task_dir / "train.csv").write_text(text, encoding="utf-8")
    task = load_task(task_dir)
    assert task.train["label"].tolist() == ["refund", "refund", "delivery", "delivery"]
    assert task.warnings == []


def test_label_case_and_spaces_forgiven_with_warning(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [("refund me", " Refund ")])
    task = load_task(task_dir)
    assert task.train["label"].tolist()[-1] == "refund"
    assert any("case, spaces" in p.message for p in task.warnings)


def test_loader_never_writes(task_dir):
    before = {p: p.read_bytes() for p in task_dir.iterdir()}
    inspect_task(task_dir)
    assert {p: p.read_bytes() for p in task_dir.iterdir()} == before


# ---- errors: every one names file, row and column ---------------------------------------------

def test_unknown_label_suggests(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [("money back pls", "refnud")])
    p = only_error(task_dir)
    assert (p.file, p.row, p.column, p.value) == ("train.csv", 6, "answer", "refnud")
    assert "did you mean 'refund'" in str(p)


def test_unknown_label_in_test_file(task_dir):
    write_csv(task_dir / "test.csv", "question,answer", TEST + [("hi", "greeting")])
    p = only_error(task_dir)
    assert (p.file, p.row, p.column) == ("test.csv", 4, "answer")
    assert "use one of: refund, delivery" in str(p)


def test_empty_label(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN[:2] + [("no label here", "")] + TRAIN[2:])
    p = only_error(task_dir)
    assert (p.file, p.row, p.column, p.message) == ("train.csv", 4, "answer", "empty label")


def test_empty_text(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [("   ", "refund")])
    p = only_error(task_dir)
    assert (p.file, p.row, p.column, p.message) == ("train.csv", 6, "question", "empty text")


def test_empty_context(task_dir):
    (task_dir / "unstructured.csv").write_text("context,other\n,x\nfine text,y\n", encoding="utf-8")
    p = only_error(task_dir)
    assert (p.file, p.row, p.column) == ("unstructured.csv", 2, "context")


def test_missing_column(task_dir):
    write_csv(task_dir / "train.csv", "text,label", TRAIN)
    p = only_error(task_dir)
    assert (p.file, p.row) == ("train.csv", 1)
    assert "'question'" in p.message and "'answer'" in p.message and "'text'" in p.message


def test_missing_context_column(task_dir):
    write_csv(task_dir / "unstructured.csv", "text", CONTEXT)
    p = only_error(task_dir)
    assert (p.file, p.row) == ("unstructured.csv", 1) and "'context'" in p.message


def test_class_without_train_example(task_dir):
    classes = {**{"refund": "a", "delivery": "b"}, "complaint": "c"}
    make_task(task_dir, classes=classes)
    p = only_error(task_dir)
    assert (p.file, p.column, p.value) == ("train.csv", "answer", "complaint")


def test_invalid_json_line_and_column(task_dir):
    (task_dir / "job_description.json").write_text('{\n  "task_description": "x"\n  "classes_description": {}\n}')
    p = only_error(task_dir)
    assert p.file == "job_description.json" and p.row == 3
    assert "line 3, column 3" in p.message


def test_json_not_an_object(task_dir):
    (task_dir / "job_description.json").write_text('["refund", "delivery"]')
    assert "JSON object" in only_error(task_dir).message


def test_missing_task_description(task_dir):
    (task_dir / "job_description.json").write_text(json.dumps({"classes_description": {"a": "x", "b": "y"}}))
    problems = errors_of(task_dir)
    assert any(p.column == "task_description" for p in problems)


def test_class_without_description(task_dir):
    job = {"task_description": "t", "classes_description": {"refund": "x", "delivery": ""}}
    (task_dir / "job_description.json").write_text(json.dumps(job))
    p = only_error(task_dir)
    assert (p.file, p.column, p.value) == ("job_description.json", "classes_description", "delivery")


def test_classes_differing_only_in_case(task_dir):
    job = {"task_description": "t", "classes_description": {"refund": "x", "Refund": "y", "delivery": "z"}}
    (task_dir / "job_description.json").write_text(json.dumps(job))
    assert "listed twice" in only_error(task_dir).message


def test_one_class_task(task_dir):
    make_task(task_dir, classes={"refund": "x"}, train=TRAIN[:2], test=TEST[:1])
    assert "only one class" in only_error(task_dir).message


@pytest.mark.parametrize("file", ["train.csv", "test.csv", "unstructured.csv"])
def test_empty_file(task_dir, file):
    (task_dir / file).write_bytes(b"")
    p = only_error(task_dir)
    assert (p.file, p.message) == (file, "the file is empty")


def test_header_only(task_dir):
    (task_dir / "test.csv").write_text("question,answer\n")
    assert only_error(task_dir).message == "the file has a header but no usable data rows"


@pytest.mark.parametrize("file", ["train.csv", "test.csv", "job_description.json"])
def test_missing_file(task_dir, file):
    (task_dir / file).unlink()
    p = only_error(task_dir)
    assert (p.file, p.message) == (file, "file not found")


def test_missing_folder(tmp_path):
    assert "task folder not found" in only_error(tmp_path / "nope").message


def test_binary_garbage(task_dir):
    (task_dir / "train.csv").write_bytes(bytes(range(256)) * 20)
    p = only_error(task_dir)
    assert p.file == "train.csv" and "binary" in p.message


def test_huge_cell_is_refused_and_shortened(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [("x" * 5_000_000, "refund")])
    p = only_error(task_dir)
    assert (p.file, p.row, p.column) == ("train.csv", 6, "question")
    assert len(str(p)) < 400


def test_all_errors_reported_together(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [("", "refund"), ("x", "bogus")])
    write_csv(task_dir / "test.csv", "question,answer", TEST + [("y", "nope")])
    problems = errors_of(task_dir)
    assert {(p.file, p.row) for p in problems} == {("train.csv", 6), ("train.csv", 7), ("test.csv", 4)}
    with pytest.raises(TaskError, match="3 problem"):
        load_task(task_dir)


# ---- warnings -----------------------------------------------------------------------------------

def test_duplicate_rows_warned(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [TRAIN[0]])
    (p,) = warnings_of(task_dir)
    assert (p.file, p.row, p.column) == ("train.csv", 6, "question") and "duplicate" in p.message


def test_train_rows_also_in_test_are_left_out_of_training(task_dir):
    write_csv(task_dir / "test.csv", "question,answer", TEST + [("I want my MONEY back ", "refund")])
    task = load_task(task_dir)
    assert task.train["text"].tolist() == ["please refund the order", "parcel has not arrived",
                                           "where is my package"]
    assert task.train["row"].tolist() == [3, 4, 5]  # rows keep their spreadsheet numbers
    (leak,) = [p for p in task.warnings if "also appear in test.csv" in p.message]
    assert leak.file == "train.csv" and "rows 2)" in leak.message
    assert (task_dir / "train.csv").read_text().count("I want my money back") == 1  # the file is untouched


def test_unstructured_identical_to_test_warned(task_dir):
    write_csv(task_dir / "unstructured.csv", "context", CONTEXT + ["my order is late"])
    (p,) = warnings_of(task_dir)
    assert p.file == "unstructured.csv" and "rows 5" in p.message


def test_imbalance_warned(task_dir):
    many = [(f"refund request number {i}", "refund") for i in range(7)]
    write_csv(task_dir / "train.csv", "question,answer", many + TRAIN[2:])
    assert any("imbalanced" in p.message for p in warnings_of(task_dir))


def test_long_texts_counted(task_dir):
    long = " ".join(["word"] * 300)
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [(long, "refund"), (long + " x", "refund")])
    (p,) = warnings_of(task_dir)
    assert p.message.startswith(f"2 text(s) are longer than ~{LONG_TEXT_WORDS} words")
    assert f"at most the first {MAX_WINDOW} word pieces" in p.message
    assert LONG_TEXT_WORDS == words_in(MAX_WINDOW) < 300  # the warning and the longest window agree


def test_class_without_test_rows_warned(task_dir):
    write_csv(task_dir / "test.csv", "question,answer", TEST[:1])
    (p,) = warnings_of(task_dir)
    assert (p.file, p.value) == ("test.csv", "delivery")


def test_formula_cell_warned_kept_as_text(task_dir):
    formula = '=HYPERLINK("http://x.example","refund")'
    write_csv(task_dir / "unstructured.csv", "context", CONTEXT + [formula])
    task = load_task(task_dir)
    assert formula in task.unstructured["text"].tolist()
    assert any("formula" in p.message and p.row == 5 for p in task.warnings)


def test_missing_unstructured_is_a_warning(task_dir):
    (task_dir / "unstructured.csv").unlink()
    task = load_task(task_dir)
    assert len(task.unstructured) == 0 and task.warnings[0].file == "unstructured.csv"


def test_two_hundred_classes(tmp_path):
    classes = {f"class_{i:03d}": f"Texts about topic {i}." for i in range(200)}
    train = [(f"text about topic {i}", f"class_{i:03d}") for i in range(200)]
    test = [(f"another text on topic {i}", f"class_{i:03d}") for i in range(5)]
    task = load_task(make_task(tmp_path / "big", classes=classes, train=train, test=test,
                               context=["x"]))
    assert len(task.classes) == 200
