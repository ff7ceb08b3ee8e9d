"""The bad-input matrix: hostile and odd task folders, each with one thing wrong.

Every case either fails with one clear error (file, row, column, shortened value,
what to do) or is accepted on purpose, as README's task-folder section says. None
may raise anything but `TaskError`, hang, or change a byte of the folder.
"""

from __future__ import annotations

import json
import os
import threading
import unicodedata
from pathlib import Path

import pytest
from conftest import CLASSES, CONTEXT, TEST, TRAIN, make_task, write_csv

import helpers.tables
from helpers.guard import split_validation
from helpers.problems import TaskError
from helpers.task import inspect_task, load_task


def snapshot(folder: Path) -> dict:
    """Every regular file's bytes; links and special files by what they are."""
    result = {}
    for path in sorted(folder.rglob("*")):
        if path.is_symlink():
            result[path] = ("link", os.readlink(path))
        elif path.is_file():
            result[path] = path.read_bytes()
        else:
            result[path] = "special" if not path.is_dir() else "dir"
    return result


def inspect_within(folder: Path, seconds: float = 20.0):
    """inspect_task in a thread: a hang fails the test instead of blocking CI."""
    before = snapshot(folder)
    box: dict = {}
    thread = threading.Thread(target=lambda: box.update(result=inspect_task(folder)), daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), "loading the task folder hung"
    assert snapshot(folder) == before, "loading changed the task folder"
    return box["result"]


def the_error(folder: Path):
    task, problems = inspect_within(folder)
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1, [str(p) for p in errors]
    assert len(str(errors[0])) < 500
    return errors[0]


def accepted(folder: Path):
    task, problems = inspect_within(folder)
    assert task is not None and not [p for p in problems if p.severity == "error"], [str(p) for p in problems]
    return task


# ---- special files ----------------------------------------------------------------------------

@pytest.mark.parametrize("file", ["train.csv", "job_description.json"])
def test_a_folder_in_place_of_a_file(task_dir, file):
    (task_dir / file).unlink()
    (task_dir / file).mkdir()
    p = the_error(task_dir)
    assert (p.file, p.message) == (file, "is a folder, not a regular file")


def test_a_named_pipe_is_refused_without_waiting_for_a_writer(task_dir):
    (task_dir / "train.csv").unlink()
    os.mkfifo(task_dir / "train.csv")
    p = the_error(task_dir)
    assert (p.file, p.message) == ("train.csv", "is a named pipe (FIFO), not a regular file")


def test_a_link_to_an_endless_device_is_refused(task_dir):
    (task_dir / "unstructured.csv").unlink()
    (task_dir / "unstructured.csv").symlink_to("/dev/zero")
    p = the_error(task_dir)
    assert (p.file, p.message) == ("unstructured.csv", "is a device, not a regular file")


def test_a_device_is_refused_even_when_no_folder_is_named():
    problems = helpers.tables.Problems()
    assert helpers.tables.read_bytes(Path("/dev/zero"), 1000, problems) is None
    assert problems.errors[0].message == "is a device, not a regular file"


def test_a_link_out_of_the_task_folder_is_read_with_a_warning(task_dir, tmp_path):
    outside = write_csv(tmp_path / "elsewhere.csv", "question,answer", TEST + [("is it shipped yet", "delivery")])
    (task_dir / "test.csv").unlink()
    (task_dir / "test.csv").symlink_to(outside)
    task = accepted(task_dir)
    assert task.test["text"].tolist()[-1] == "is it shipped yet"
    (p,) = task.warnings
    assert p.file == "test.csv" and "outside the task folder" in p.message and "does not carry it" in p.fix


def test_a_link_inside_the_task_folder_is_followed(task_dir):
    (task_dir / "test.csv").rename(task_dir / "test-v2.csv")
    (task_dir / "test.csv").symlink_to("test-v2.csv")
    assert accepted(task_dir).test["text"].tolist() == [q for q, _ in TEST]


def test_a_dangling_link_is_named(task_dir):
    (task_dir / "train.csv").unlink()
    (task_dir / "train.csv").symlink_to(task_dir / "gone.csv")
    p = the_error(task_dir)
    assert p.file == "train.csv" and "does not exist" in p.message


def test_a_file_over_the_size_limit_is_refused_before_it_is_read(task_dir, monkeypatch):
    monkeypatch.setattr(helpers.tables, "MAX_CSV_BYTES", 1_000)
    write_csv(task_dir / "unstructured.csv", "context", CONTEXT + ["padding " * 200])
    p = the_error(task_dir)
    assert p.file == "unstructured.csv" and "over the limit of 1,000 bytes" in p.message


def test_a_task_folder_that_is_a_file(tmp_path):
    (tmp_path / "data-x").write_text("not a folder")
    assert "is a file, not a task folder" in the_error_of_missing(tmp_path / "data-x").message


def the_error_of_missing(path: Path):
    with pytest.raises(TaskError) as info:
        load_task(path)
    (p,) = info.value.problems
    return p


# ---- encodings and binary data ----------------------------------------------------------------

def test_bytes_that_break_utf8_after_a_bom_name_the_file(task_dir):
    (task_dir / "train.csv").write_bytes(b"\xef\xbb\xbfquestion,answer\nI want my money back,refund\n"
                                         b"caf\xe9 refund,refund\nparcel,delivery\nbox,delivery\n")
    p = the_error(task_dir)
    assert p.file == "train.csv" and "marked as UTF-8" in p.message and "CSV UTF-8" in p.fix


def test_a_truncated_utf16_file_names_the_file(task_dir):
    raw = write_csv(task_dir / "test.csv", "question,answer", TEST, encoding="utf-16").read_bytes()
    (task_dir / "test.csv").write_bytes(raw[:-1])
    p = the_error(task_dir)
    assert p.file == "test.csv" and "marked as UTF-16" in p.message


def test_binary_bytes_after_the_first_4kb_are_found(task_dir):
    rows = TRAIN + [(f"a long but ordinary refund request number {i}", "refund") for i in range(120)]
    raw = write_csv(task_dir / "train.csv", "question,answer", rows).read_bytes()
    assert len(raw) > 5000
    (task_dir / "train.csv").write_bytes(raw + b"\x00\x01\x02garbage,refund\n")
    p = the_error(task_dir)
    assert p.file == "train.csv" and "binary data" in p.message and f"line {len(rows) + 2}" in p.message


def test_json_nested_very_deeply(task_dir):
    (task_dir / "job_description.json").write_text("[" * 100_000 + "]" * 100_000)
    p = the_error(task_dir)
    assert p.file == "job_description.json" and "nested too deeply" in p.message


def test_json_with_a_class_written_twice(task_dir):
    (task_dir / "job_description.json").write_text(
        '{"task_description": "t", "classes_description": {"refund": "a", "delivery": "b", "refund": "c"}}')
    p = the_error(task_dir)
    assert "'refund' is written twice" in p.message and p.fix == "merge the two entries into one"


def test_json_saved_as_utf16_is_read(task_dir):
    job = {"task_description": "Route shop emails.", "classes_description": CLASSES}
    (task_dir / "job_description.json").write_bytes(json.dumps(job).encode("utf-16"))
    assert accepted(task_dir).classes == ["refund", "delivery"]


def test_a_class_description_that_is_not_text(task_dir):
    job = {"task_description": "t", "classes_description": {"refund": {"nested": 1}, "delivery": "b"}}
    (task_dir / "job_description.json").write_text(json.dumps(job))
    p = the_error(task_dir)
    assert (p.column, p.value) == ("classes_description", "refund") and "no description" in p.message


# ---- class names and labels: Unicode look-alikes ------------------------------------------------

def test_a_class_name_with_two_spaces_and_labels_spelt_the_same(tmp_path):
    classes = {"gift  card": "Gift cards.", "delivery": "Parcels."}
    train = [("my gift card code fails", "gift  card"), ("voucher not accepted", "gift  card")] + TRAIN[2:]
    test = [("the card balance is zero", "gift  card"), TEST[1]]
    task = accepted(make_task(tmp_path / "data-gift", classes=classes, train=train, test=test))
    assert task.train["label"].tolist()[:2] == ["gift  card", "gift  card"] and task.warnings == []


def test_class_names_that_differ_only_in_unicode_form(task_dir):
    composed, decomposed = "café", unicodedata.normalize("NFD", "café")
    job = {"task_description": "t", "classes_description": {composed: "a", decomposed: "b", "delivery": "c"}}
    (task_dir / "job_description.json").write_text(json.dumps(job))
    twice = [p for p in inspect_within(task_dir)[1] if "listed twice" in p.message]
    assert [p.value for p in twice] == [decomposed] and "Unicode form" in twice[0].message


def test_a_class_name_with_an_invisible_character(task_dir):
    job = {"task_description": "t", "classes_description": {"refund\u200b": "a", "delivery": "b"}}
    (task_dir / "job_description.json").write_text(json.dumps(job))
    task, problems = inspect_within(task_dir)
    invisible = [p for p in problems if "invisible character (U+200B) at position 7" in p.message]
    assert len(invisible) == 1 and invisible[0].fix == "retype the name without it"


def test_fullwidth_and_zero_width_labels_are_read_as_the_class(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [("refund me", "Ｒｅｆｕｎｄ"),
                                                                  ("refund me now", "ref\u200bund")])
    task = accepted(task_dir)
    assert task.train["label"].tolist()[-2:] == ["refund", "refund"]
    assert any("2 label(s) differ" in p.message for p in task.warnings)


def test_a_5000_character_class_name_gets_a_short_message(task_dir):
    job = {"task_description": "t", "classes_description": {"x" * 5000: "a", "refund": "b", "delivery": "c"}}
    (task_dir / "job_description.json").write_text(json.dumps(job))
    p = the_error(task_dir)
    assert "5,000 characters" in p.message and len(str(p)) < 300


def test_a_5000_character_unknown_label_gets_a_short_message(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [("refund me", "y" * 5000)])
    p = the_error(task_dir)
    assert (p.row, p.column, p.message) == (6, "answer", "unknown label") and len(str(p)) < 300


# ---- spreadsheet quirks ----------------------------------------------------------------------

def test_a_duplicated_answer_column(task_dir):
    (task_dir / "train.csv").write_text("question,answer,answer\n" + "".join(f"{q},{a},{a}\n" for q, a in TRAIN))
    p = the_error(task_dir)
    assert (p.file, p.row, p.column) == ("train.csv", 1, "answer") and "appears 2 times" in p.message


def test_an_unquoted_comma_is_a_cell_count_not_an_unknown_label(task_dir):
    (task_dir / "train.csv").write_text("question,answer\n" + "".join(f"{q},{a}\n" for q, a in TRAIN)
                                        + "I want the blue, not the red,refund\n")
    p = the_error(task_dir)
    assert (p.file, p.row) == ("train.csv", 6)
    assert p.message.startswith("3 cells where 2 were expected") and "quotes" in p.fix


def test_trailing_empty_cells_are_not_extra_cells(task_dir):
    (task_dir / "train.csv").write_text("question,answer,,\n" + "".join(f"{q},{a},,\n" for q, a in TRAIN))
    accepted(task_dir)


def test_an_extra_named_column_is_ignored(task_dir):
    (task_dir / "train.csv").write_text("question,answer,notes\n" + "".join(f"{q},{a},ok\n" for q, a in TRAIN))
    assert accepted(task_dir).train["label"].tolist() == [a for _, a in TRAIN]


def test_an_unclosed_quote_at_the_end_names_its_row(task_dir):
    (task_dir / "train.csv").write_text("question,answer\n" + "".join(f"{q},{a}\n" for q, a in TRAIN)
                                        + '"I never closed this quote,refund\nmore text,delivery\n')
    p = the_error(task_dir)
    assert (p.file, p.row) == ("train.csv", 6) and "never closed" in p.message


def test_an_unclosed_quote_closed_rows_later_blames_no_innocent_label(task_dir):
    lines = ['question,answer', 'I want my money back,refund', '"where is my package,delivery',
             'parcel has not arrived,delivery', 'courier said "soon",delivery', 'please refund the order,refund',
             'the van never came,delivery']
    (task_dir / "train.csv").write_text("\n".join(lines) + "\n")
    p = the_error(task_dir)
    assert (p.file, p.row, p.column) == ("train.csv", 3, "question") and "quote" in p.message
    assert "several lines later" in p.message and "unknown label" not in p.message


def test_cr_only_line_ends_with_semicolons_in_the_texts(task_dir):
    rows = [("refund; now; please", "refund"), ("money back; thanks", "refund")] + TRAIN[2:]
    write_csv(task_dir / "train.csv", "question,answer", rows, newline="\r")
    assert accepted(task_dir).train["text"].tolist()[0] == "refund; now; please"


# ---- rows: conflicts, repeats, one-row classes -------------------------------------------------

def test_the_same_text_with_two_answers_is_an_error(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN + [("Where is my  package", "refund")])
    p = the_error(task_dir)
    assert (p.row, p.column, p.value) == (6, "answer", "refund")
    assert "same text as row 5" in p.message and "'delivery' there" in p.message


def test_5000_duplicate_rows_are_summarised_in_one_line(task_dir):
    write_csv(task_dir / "unstructured.csv", "context", CONTEXT + ["the same again"] * 5000)
    task = accepted(task_dir)
    (p,) = [p for p in task.warnings if "duplicate" in p.message]
    assert p.message.endswith("4,999 rows, first at rows 6-10") and p.row is None
    assert len(task.warnings) == 1


def test_a_class_with_one_train_row_is_warned_and_kept_for_training(task_dir):
    write_csv(task_dir / "train.csv", "question,answer", TRAIN[:3])
    task = accepted(task_dir)
    (p,) = task.warnings
    assert (p.file, p.value) == ("train.csv", "delivery") and "only one train row" in p.message
    trained, held_out = split_validation(task.train, seed=0)
    assert "parcel has not arrived" in trained["text"].tolist()  # learnt from, never held out
    assert "delivery" not in held_out["label"].tolist() and len(held_out) == 1


def test_a_class_whose_only_rows_are_test_rows_has_none_left(task_dir):
    write_csv(task_dir / "test.csv", "question,answer", TEST + TRAIN[2:])
    problems = [p for p in inspect_within(task_dir)[1] if p.severity == "error"]
    assert [(p.file, p.value) for p in problems] == [("train.csv", "delivery")]
    assert "no example left for training" in problems[0].message
