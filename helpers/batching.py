"""Batches of texts of similar length, so a long text does not pad seven short ones.

A batch is padded to its longest text, and a step costs what its padded batch
costs. With a 256-piece window and forum posts whose 90th percentile is past the
window, nearly every random batch of 8 holds one text that fills it. Shuffling,
then sorting by length within small groups of batches, keeps batches random in
content while each one pads little.
"""

from __future__ import annotations

import torch
from torch.utils.data import Sampler

BATCHES_PER_GROUP = 4  # batches sorted together; Trainer's own sampler sorts 50, and none below 128 rows


class SimilarLengths(Sampler[int]):
    """Row order for one epoch: a seeded shuffle, sorted by length within groups of
    `BATCHES_PER_GROUP` batches, the full batches then shuffled (a short last batch
    stays last so the data loader cuts batches where this order means them).

    The order depends only on (seed, epoch), set by `Trainer` through `set_epoch`, so a
    run resumed from a checkpoint sees the batches an unbroken run would."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int):
        self.lengths, self.batch_size, self.seed, self.epoch = list(lengths), batch_size, seed, 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.lengths)

    def __iter__(self):
        generator = torch.Generator().manual_seed(self.seed * 100_003 + self.epoch)
        order = torch.randperm(len(self.lengths), generator=generator).tolist()
        size = self.batch_size * BATCHES_PER_GROUP
        groups = [sorted(order[i:i + size], key=lambda row: -self.lengths[row]) for i in range(0, len(order), size)]
        batches = [group[i:i + self.batch_size] for group in groups for i in range(0, len(group), self.batch_size)]
        full = [batch for batch in batches if len(batch) == self.batch_size]
        short = [batch for batch in batches if len(batch) < self.batch_size]
        shuffled = [full[i] for i in torch.randperm(len(full), generator=generator).tolist()]
        return iter([row for batch in shuffled + short for row in batch])
