"""Sentence embeddings with the offline MiniLM, for retrieval and near-duplicate checks."""

from __future__ import annotations

from functools import lru_cache

import numpy as np

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


def embed(texts: list[str], name: str = MINILM, batch_size: int = 64) -> np.ndarray:
    """Mean-pooled, unit-length embeddings (how all-MiniLM-L6-v2 was trained)."""
    import torch

    tokenizer, model = load_encoder(name)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                              max_length=256, return_tensors="pt")
            hidden = model(**batch).last_hidden_state
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
            chunks.append(torch.nn.functional.normalize(pooled, dim=-1).numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, model.config.hidden_size), np.float32)


def max_similarity(texts: list[str], references: list[str]) -> np.ndarray:
    """For each text, the cosine similarity to its closest reference text."""
    if not texts or not references:
        return np.zeros(len(texts))
    return (embed(texts) @ embed(references).T).max(axis=1)
