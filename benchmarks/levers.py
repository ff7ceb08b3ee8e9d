"""Screen recipe levers on a BANKING77 dev split (built from its train split), then run the chosen one on test.

    python benchmarks/levers.py --name default-p0.9 --teacher 0.9
    python benchmarks/levers.py --name ref-lr5e-5 --teacher truth --set learning_rate=5e-5
    python benchmarks/levers.py --probes          # linear probes on frozen features, no training
    python benchmarks/levers.py --name lpft-p0.9 --teacher 0.9 --split test --set warm_start=align+probe
    python benchmarks/levers.py --name lpft-all-gold-p0.9 --teacher 0.9 --split test \
        --set warm_start=align+probe learn_held_out=true   # as distill's refit: every seed row

One student-tuned per call: the seed rows less the guard's validation split (all of them
with ``learn_held_out=true``), plus 1,500 unlabelled rows labelled by the simulated teacher
(p) or by their true intents (``truth``: the supervised reference, a plain fine-tune).
Accuracy on 1,000 held-out train rows (``--split dev``, the default) or on BANKING77's test
set (``--split test``, only for a recipe chosen on dev) goes to
benchmarks/results/levers/<name>-<split>-seed<S>.json.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

from simulated import SimulatedTeacher, build_dev_source, read_truth, supervised_rows  # noqa: E402

from helpers.benchmark import build_banking77_task, find_banking77  # noqa: E402
from helpers.checks import normalise  # noqa: E402
from helpers.distill import Recipe, delivered_rows  # noqa: E402
from helpers.guard import split_validation  # noqa: E402
from helpers.recipes import parse_settings  # noqa: E402
from helpers.student import StudentConfig, gold_rows  # noqa: E402
from helpers.task import Task, load_task  # noqa: E402

OUT = ROOT / "benchmarks" / "results" / "levers"


def k_shot_task(tmp: Path, k: int, unlabelled: int, split: str = "dev") -> tuple[Task, dict[str, str]]:
    """A k-shot task and the true intents of its unlabelled rows. Its test set is BANKING77's
    (split "test") or 1,000 held-out train rows (split "dev", for choosing levers). The folder is
    built as benchmarks/run.py builds it (data seed 0) whatever the training seed, so figures
    compare with BENCHMARKS.md's."""
    source = find_banking77(ROOT)
    if split == "dev":
        source = build_dev_source(source, tmp / "dev-source")
    truth_csv = tmp / "truth.csv"
    folder = build_banking77_task(source, k, tmp / f"data-banking77-{split}-{k}shot", unlabelled,
                                  truth_csv=truth_csv)
    return load_task(folder), read_truth(truth_csv)


def training_rows(task: Task, truth: dict[str, str], teacher: str, recipe: Recipe, train: pd.DataFrame,
                  validation: pd.DataFrame) -> pd.DataFrame:
    """Gold rows plus the unlabelled rows, labelled by their truth or by a simulated teacher.

    With `learn_held_out` the student is the one `distill` delivers after the guard's verdict: it
    learns every seed row, the validation split too, from a teacher fit on all of them.
    """
    texts = task.unstructured["text"].tolist()
    every_row = recipe.config.learn_held_out
    gold = delivered_rows(recipe, gold_rows(train, task.classes), {})  # the product's own rule, not a copy
    if teacher == "none":
        return gold
    if teacher == "truth":
        return pd.concat([gold, supervised_rows(texts, truth, task.classes)], ignore_index=True)
    simulated = SimulatedTeacher(task, truth, float(teacher), recipe.config.seed)
    simulated = simulated if every_row else simulated.without(validation.index)
    return pd.concat([gold, recipe.teach(simulated, texts)[0]], ignore_index=True)


def screen(name: str, teacher: str, settings: dict, seed: int, k: int, unlabelled: int, split: str) -> dict:
    """Train one student on the k-shot task and score it on that task's test rows."""
    config = StudentConfig(seed=seed, **settings)
    with tempfile.TemporaryDirectory(prefix="levers-") as tmp:
        task, truth = k_shot_task(Path(tmp), k, unlabelled, split)
        recipe = Recipe(task, config, Path(tmp) / "work", progress=False)
        train, validation = split_validation(task.train, seed)
        rows = training_rows(task, truth, teacher, recipe, train, validation)
        start = time.perf_counter()
        student = recipe.train(rows, validation, "student")
        probs = student.predict_proba(task.test["text"].tolist())
    truth_ids = np.array([task.classes.index(c) for c in task.test["label"]])
    return {"name": name, "split": split, "teacher": teacher, "seed": seed, "k": k, "config": asdict(config),
            "rows": len(rows), "test_rows": len(truth_ids),
            "accuracy": round(float((probs.argmax(1) == truth_ids).mean()), 4),
            "validation_accuracy": round(student.validation["accuracy"], 4), "warm_start": student.warm_start,
            "steps": student.log_history[-1].get("step"), "seconds": round(time.perf_counter() - start, 1)}


def probes(seed: int, k: int, unlabelled: int) -> dict:
    """Linear probes on frozen features, before any fine-tuning: how much each head input already holds.

    Mean-pooled embeddings are what the seed teacher reads; the pooler output is what
    BertForSequenceClassification's head reads, fresh and after `align_pooler` on the
    training texts (no labels).
    """
    import copy

    from sklearn.linear_model import LogisticRegression

    from helpers.embeddings import embed
    from helpers.student import load_student
    from helpers.warmstart import align_pooler, pooled_features

    with tempfile.TemporaryDirectory(prefix="levers-") as tmp:
        task, truth = k_shot_task(Path(tmp), k, unlabelled)
    train, _ = split_validation(task.train, seed)
    texts = task.unstructured["text"].tolist()
    sets = {"gold": (train["text"].tolist(), train["label"].tolist()),
            "gold+truth": (train["text"].tolist() + texts,
                           train["label"].tolist() + [truth[normalise(t)] for t in texts])}
    tokenizer, model = load_student("minilm", task.classes)
    aligned = copy.deepcopy(model)
    cosine = align_pooler(aligned, tokenizer, sets["gold+truth"][0], 128, seed=seed)
    featurise = {"mean_pooled": lambda x: embed(x),
                 "pooler": lambda x: pooled_features(model, tokenizer, x, 128).numpy(),
                 "aligned_pooler": lambda x: pooled_features(aligned, tokenizer, x, 128).numpy()}
    found = {}
    for feature, fn in featurise.items():
        test = fn(task.test["text"].tolist())
        for name, (x, y) in sets.items():
            probe = LogisticRegression(C=10.0, max_iter=2000).fit(fn(x), y)
            found[f"{feature}/{name}"] = round(float(probe.score(test, task.test["label"])), 4)
    return {"name": "probes", "seed": seed, "k": k, "dev_test_rows": len(task.test), "dev_accuracy": found,
            "align_cosine": round(cosine, 4)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--name", default="probes")
    parser.add_argument("--probes", action="store_true", help="linear probes on frozen features only")
    parser.add_argument("--teacher", default="truth", help="truth, none, or the simulated teacher's p")
    parser.add_argument("--set", nargs="*", default=[], help="StudentConfig fields, name=value")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--shots", type=int, default=10)
    parser.add_argument("--unlabelled", type=int, default=1500)
    parser.add_argument("--split", choices=["dev", "test"], default="dev",
                        help="test: BANKING77's test set, only for recipes already chosen on dev")
    args = parser.parse_args()
    if args.probes:
        record = probes(args.seed, args.shots, args.unlabelled)
    else:
        record = screen(args.name, args.teacher, parse_settings(args.set), args.seed, args.shots,
                        args.unlabelled, args.split)
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / f"{args.name}-{args.split}-seed{args.seed}.json").write_text(json.dumps(record, indent=2))
    print(json.dumps(record))


if __name__ == "__main__":
    main()
