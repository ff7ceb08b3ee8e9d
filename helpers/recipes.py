"""Training recipes: the student's hyper-parameters, and the named sets BENCHMARKS.md compares.

A recipe is only numbers, but which numbers decides whether the student absorbs
its teacher. ``v3`` puts a random head behind BERT's pooler and trains it fast
(lr 1e-4) and long (a step floor); ``lpft`` first points the pooler where the
sentence embedding points and starts the head from a linear probe (see
helpers/warmstart.py), then fine-tunes gently for two epochs. On a BANKING77 dev
split with 1,500 correct labels, v3 reached 0.827 and lpft 0.900 (BENCHMARKS.md).
``cft`` is lpft with a SetFit-style contrastive stage on the gold rows between the
alignment and the probe (helpers/contrastive.py): the only recipe whose kept student
beat the seed teacher on both banking and injury (3 seeds each); on BANKING77 10-shot
(seed 0) it kept 0.829 against the teacher's 0.849 in 2.5x lpft's time, and on
mental health's forum posts (seed 0) it and lpft kept 0.583 against the teacher's 0.625
(v3: 0.667), so not the default.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

MAX_STEPS = 320  # updates a big corpus may take beyond the floor (see helpers.student.planned_epochs)

RECIPES: dict[str, dict] = {
    "v3": {"warm_start": "none", "learning_rate": 1e-4, "epochs": 5, "min_steps": 150, "min_examples_per_class": 150,
           "max_steps": MAX_STEPS},
    "lpft": {"warm_start": "align+probe", "learning_rate": 3e-5, "epochs": 2, "min_steps": 0,
             "min_examples_per_class": 0, "max_steps": MAX_STEPS},
    "cft": {"warm_start": "align+contrast+probe", "learning_rate": 3e-5, "epochs": 2, "min_steps": 0,
            "min_examples_per_class": 0, "max_steps": MAX_STEPS},
}
DEFAULT_RECIPE = "v3"  # StudentConfig()'s own values


@dataclass
class StudentConfig:
    """Training recipe; the same for student-base and student-tuned."""

    backbone: str = "minilm"
    epochs: int = 5
    min_steps: int = 150
    min_examples_per_class: int = 150
    max_steps: int = MAX_STEPS  # 0: no cap
    learning_rate: float = 1e-4
    batch_size: int = 8
    max_length: int = 0  # the window in word pieces; 0: chosen from the training texts (helpers/window.py)
    group_by_length: bool = False  # batches of similar length (helpers/batching.py); a chosen long window sets it
    temperature: float = 2.0
    patience: int = 4
    seed: int = 0
    device: str = "auto"  # auto: cuda, then mps, else cpu (helpers/device.py)
    warm_start: str = "none"  # one of helpers.warmstart.WARM_STARTS
    align_epochs: int = 3
    align_min_steps: int = 200  # alignment updates at least (more epochs on a small corpus)
    # After the guard's verdict, retrain the kept student on every seed row, the guard's held-out ones too
    # (helpers/distill.py). Only for a short fixed schedule: rows it learns can no longer stop it early.
    # Off in every recipe: with cft it gained nothing beyond the seed spread (benchmarks/NOTES.md).
    learn_held_out: bool = False

    def floor_steps(self, n_classes: int) -> int:
        """Updates before early stopping may end training: `min_steps`, and enough for
        each class to come round about `min_examples_per_class` times.

        A fresh head must learn one direction per class. On BANKING77 (77 classes,
        10 rows each) five epochs were 5 steps per class and student-base reached
        0.53 on a dev split of BANKING77's train set; 15 epochs gave 0.79. With up
        to 8 classes the second term is below 150 and changes nothing.
        """
        return max(self.min_steps, math.ceil(self.min_examples_per_class * n_classes / self.batch_size))

    def with_floor(self, min_steps: int | None) -> StudentConfig:
        """The notebook's MIN_STEPS: None keeps the recipe's floor; a number replaces both of
        its terms, for a quick run (tests, a first look) whose accuracy means little."""
        if min_steps is None:
            return self
        if min_steps < 1:
            raise ValueError(f"MIN_STEPS must be 1 or more (or None for the recipe's floor), got {min_steps}")
        return replace(self, min_steps=min_steps, min_examples_per_class=0)

    @classmethod
    def recipe(cls, name: str, **overrides) -> StudentConfig:
        """The named recipe, with `overrides` (a None value keeps the recipe's own)."""
        if name not in RECIPES:
            raise ValueError(f"recipe must be one of {', '.join(RECIPES)}, got {name!r}")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown recipe setting(s): {', '.join(unknown)}")
        return cls(**{**RECIPES[name], **{k: v for k, v in overrides.items() if v is not None}})


def parse_settings(pairs: list[str]) -> dict:
    """``name=value`` pairs (a command line's ``--set``) as StudentConfig fields, each cast to its type."""
    types = {f.name: type(f.default) for f in fields(StudentConfig)}
    settings = {}
    for pair in pairs:
        name, _, value = pair.partition("=")
        if name not in types or not value:
            raise ValueError(f"expected NAME=VALUE with NAME one of {', '.join(types)}; got {pair!r}")
        settings[name] = value.lower() in ("1", "true", "yes") if types[name] is bool else types[name](value)
    return settings
