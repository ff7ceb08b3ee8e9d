"""The four example tasks shipped with the course load cleanly with the documented sizes."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from helpers.task import load_task

ROOT = Path(__file__).resolve().parents[1]
EXPECTED = {
    "data-banking-routing": ["balance_not_updated_after_cheque_or_cash_deposit", "card_payment_fee_charged",
                             "cash_withdrawal_charge", "declined_cash_withdrawal",
                             "direct_debit_payment_not_recognised", "transaction_charged_twice",
                             "transfer_fee_charged", "wrong_amount_of_cash_received"],
    "data-ecommerce": ["household", "books", "clothing_and_accessories", "electronics"],
    "data-mental-health": ["normal", "depression", "anxiety", "bipolar"],
    "data-injury": ["violence_and_other_injuries_by_persons_or_animals", "transportation_incidents",
                    "fires_and_explosions", "falls_slips_trips", "exposure_to_harmful_substances_or_environments",
                    "contact_with_objects_and_equipment", "overexertion_and_bodily_reaction"],
}


# (train rows, test rows) per class and the least unlabelled rows; the rewritten tasks are shaped like
# real folders in this format: 12 + 24 per class, 800+ unlabelled, long texts.
SIZES = {"data-banking-routing": (6, 12, 400), "data-injury": (6, 12, 400),
         "data-ecommerce": (12, 24, 800), "data-mental-health": (12, 24, 800)}


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_example_task_loads_with_expected_classes_and_sizes(folder):
    task = load_task(ROOT / folder)
    train, test, unlabelled = SIZES[folder]
    assert task.classes == EXPECTED[folder]
    assert task.train["label"].value_counts().to_dict() == {c: train for c in task.classes}
    assert task.test["label"].value_counts().to_dict() == {c: test for c in task.classes}
    assert len(task.unstructured) >= unlabelled
    assert not [p for p in task.problems if p.severity == "error"]
    assert (ROOT / folder / "README.md").exists()


@pytest.mark.parametrize("folder", sorted(EXPECTED))
def test_readme_states_the_real_row_counts(folder):
    task = load_task(ROOT / folder)
    readme = (ROOT / folder / "README.md").read_text()
    counts = {"train.csv": len(task.train), "test.csv": len(task.test), "unstructured.csv": len(task.unstructured)}
    for file, count in counts.items():
        row = re.search(rf"^\|\s*`{re.escape(file)}`[^|\n]*\|\s*([\d,]+)\s*\|", readme, re.M)
        assert row, f"{folder}/README.md has no table row for {file}"
        assert int(row.group(1).replace(",", "")) == count, f"{folder}/README.md gives {row.group(1)} rows for {file}"


@pytest.mark.parametrize("folder", ["data-ecommerce", "data-mental-health"])
def test_rewritten_tasks_have_the_length_spread_of_real_ones(folder):
    task = load_task(ROOT / folder)
    for frame in (task.train, task.test, task.unstructured):
        words = frame["text"].str.split().str.len()
        assert words.median() >= 60 and words.quantile(0.9) >= 250
    assert (task.unstructured["text"].str.split().str.len() > 1000).sum() >= 3
