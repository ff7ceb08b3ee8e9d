"""Sentence embeddings with the offline MiniLM, for retrieval and near-duplicate checks."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache

import numpy as np

from helpers.limits import EMBEDDER_TOKENS
from helpers.models import MINILM, resolve_backbone, set_threads


@lru_cache(maxsize=2)
def load_encoder(name: str = MINILM):
    """Tokenizer and encoder, loaded once per process (loading takes seconds).

    `set_threads` first also turns off transformers' per-file loading bar, which a
    notebook shows as a widget that a static view leaves empty at 0%.
    """
    from transformers import AutoModel, AutoTokenizer

    set_threads()
    path, kwargs = resolve_backbone(name)
    return AutoTokenizer.from_pretrained(path, **kwargs), AutoModel.from_pretrained(path, **kwargs).eval()


MEMO_TEXTS = 50_000  # vectors kept per process (~77 MB at 384 floats); past that the memo starts afresh
_memo: dict[tuple[str, str], np.ndarray] = {}
# False inside `unremembered`, for the thread (context) that entered it only: a server thread
# embedding meanwhile keeps its memo.
_remembering: ContextVar[bool] = ContextVar("remembering", default=True)


@contextmanager
def unremembered() -> Iterator[None]:
    """Embed afresh inside the block, neither reading nor filling the memo: timing a teacher on
    texts it has already labelled would otherwise time a dict lookup (the seed teacher showed
    0.2 ms a text and 49,000 texts/s, faster than its own encoder can read one text)."""
    token = _remembering.set(False)
    try:
        yield
    finally:
        _remembering.reset(token)


def embed(texts: list[str], name: str = MINILM) -> np.ndarray:
    """Mean-pooled, unit-length embeddings (how all-MiniLM-L6-v2 was trained), remembered per text.

    One run embeds the same corpus again and again: the leak check, then the seed
    classifier each time the teacher is rebuilt for a guard fold or the refit. On
    1,000 long texts each pass cost ~55 s on 2 cores; remembered, the later ones
    are free.
    """
    if not _remembering.get() and texts:
        return encode(list(texts), name)
    todo = sorted({t for t in texts if (name, t) not in _memo})
    if len(_memo) + len(todo) > MEMO_TEXTS:
        _memo.clear()
        todo = sorted(set(texts))
    if todo:
        _memo.update(((name, t), v) for t, v in zip(todo, encode(todo, name)))
    if not texts:
        return np.zeros((0, load_encoder(name)[1].config.hidden_size), np.float32)
    return np.stack([_memo[(name, t)] for t in texts])


def encode(texts: list[str], name: str) -> np.ndarray:
    """`encode_with` the encoder `name` names, loaded once per process."""
    return encode_with(*load_encoder(name), texts)


def encode_with(tokenizer, model, texts: list[str], batch_size: int = 64) -> np.ndarray:
    """Mean-pooled, unit-length vectors from any BERT-like body, one row per text in the order given.

    A teacher whose embedder was trained further passes its own. Texts go through longest
    first, so that a batch pads to similar lengths.
    """
    order = np.argsort([-len(t) for t in texts], kind="stable")
    vectors = np.zeros((len(texts), model.config.hidden_size), np.float32)
    for start in range(0, len(texts), batch_size):
        chunk = order[start:start + batch_size]
        vectors[chunk] = encode_batch(tokenizer, model, [texts[i] for i in chunk])
    return vectors


def encode_batch(tokenizer, model, texts: list[str]) -> np.ndarray:
    """One batch through the body, mean-pooled over real tokens and normalised."""
    import torch

    with torch.inference_mode():
        batch = tokenizer(texts, padding=True, truncation=True, max_length=EMBEDDER_TOKENS,
                          return_tensors="pt").to(model.device)
        hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        return torch.nn.functional.normalize(pooled, dim=-1).numpy()


def max_similarity(texts: list[str], references: list[str]) -> np.ndarray:
    """For each text, the cosine similarity to its closest reference text."""
    if not texts or not references:
        return np.zeros(len(texts))
    return (embed(texts) @ embed(references).T).max(axis=1)
