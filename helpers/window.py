"""How much of each text the student reads, chosen from the task's own texts.

A transformer reads a window of word pieces; past it a text is cut. On short
texts (banking messages, injury reports) 128 pieces hold every text whole; on
product descriptions and forum posts, whose 90th percentile is 250-300 words,
128 pieces is the first ~86 words. Measured on those tasks (BENCHMARKS.md,
"Long texts", 3 seeds), reading 256 pieces scored ~5 points more on forum posts
and as well on product pages, at about twice the training time; chunks pooled
at inference were as good on forum posts and worse on product pages. So the
window is the shortest that holds most of the task's texts whole, between 128
and the 256 the sentence embedder was trained at.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np

from helpers.limits import MAX_WINDOW, MIN_WINDOW
from helpers.recipes import StudentConfig

WINDOW_STEP = 32  # windows come in steps of 32 pieces
WINDOW_QUANTILE = 0.9  # the share of texts the window should hold whole
SHORTEST_WINDOW = 16  # a window a user may set: [CLS], [SEP] and a few words


def choose_window(lengths: Sequence[int], max_positions: int = MAX_WINDOW) -> int:
    """The smallest multiple of `WINDOW_STEP` that holds `WINDOW_QUANTILE` of the texts
    whole ([CLS] and [SEP] counted), kept within MIN_WINDOW..MAX_WINDOW and the
    model's position table. A task of short texts gets MIN_WINDOW, as every task had
    before the window was chosen, so its measured results stand."""
    need = math.ceil(float(np.quantile(lengths, WINDOW_QUANTILE)) / WINDOW_STEP) * WINDOW_STEP if len(lengths) else 0
    return min(max(need, MIN_WINDOW), MAX_WINDOW, max_positions)


def token_lengths(texts: list[str], tokenizer) -> list[int]:
    """Word pieces per text, [CLS] and [SEP] included, uncut."""
    return [len(ids) for ids in tokenizer(list(texts), verbose=False)["input_ids"]] if len(texts) else []


def backbone_tokenizer(backbone: str) -> tuple[object, int]:
    """The student's tokenizer and how many positions its model holds."""
    from transformers import AutoConfig, AutoTokenizer

    from helpers.models import resolve_backbone

    path, kwargs = resolve_backbone(backbone)
    positions = getattr(AutoConfig.from_pretrained(path, **kwargs), "max_position_embeddings", MAX_WINDOW)
    return AutoTokenizer.from_pretrained(path, **kwargs), positions


def fit_window(config: StudentConfig, texts: list[str]) -> StudentConfig:
    """`config` with its window chosen from `texts` when ``max_length`` is 0 ("from the data").

    A chosen window past MIN_WINDOW comes with batches of similar length
    (helpers/batching.py): a long window padded in every batch is what doubled the
    training time. A window the user set is kept, and so is their batching; one the
    model cannot read is refused here, before any training, with what to do."""
    tokenizer, positions = backbone_tokenizer(config.backbone)
    if config.max_length:
        if not SHORTEST_WINDOW <= config.max_length <= positions:
            raise ValueError(f"MAX_LENGTH (--max-length) is {config.max_length}; {config.backbone} reads "
                             f"{SHORTEST_WINDOW} to {positions} word pieces: pick one in that range, or None "
                             "(no --max-length) to choose it from the task's texts")
        return config
    window = choose_window(token_lengths(texts, tokenizer), positions)
    return replace(config, max_length=window, group_by_length=config.group_by_length or window > MIN_WINDOW)


def fit_to_task(config: StudentConfig, task) -> StudentConfig:
    """`fit_window` on the texts a run trains on: the seed rows and the unlabelled corpus.
    Test texts are left out: they judge the model, so nothing about it is chosen from them."""
    return fit_window(config, task.train["text"].tolist() + task.unstructured["text"].tolist())
