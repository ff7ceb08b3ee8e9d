"""The folder a training run keeps its checkpoints in, claimed so that only its own run resumes it.

Under torchrun every process trains the same model and the `Trainer` saves checkpoints
from rank 0 only, into one shared folder; so rank 0 alone claims (and may empty) the
folder, and the others wait for it before they look for a checkpoint.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from dataclasses import asdict
from pathlib import Path

import pandas as pd

from helpers.device import is_main_process, world_size

RUN_FILE = "run.json"


def fingerprint(rows: pd.DataFrame, validation: pd.DataFrame, classes: list[str], config) -> str:
    """Hash of everything that shapes a training run (data, classes, the `StudentConfig`
    recipe): a checkpoint is resumed only by the run with the same hash."""
    payload = {"rows": rows[["text", "soft_targets", "sample_weight", "temperature"]].values.tolist(),
               "validation": validation[["text", "label"]].values.tolist(), "classes": classes,
               "config": asdict(config)}
    return hashlib.sha256(json.dumps(payload, default=str).encode()).hexdigest()


def last_complete_checkpoint(work_dir: Path) -> str | None:
    """Newest checkpoint whose trainer_state.json (written last by `Trainer`) is whole.

    A process killed while saving leaves a folder without it; that one is skipped.
    """
    def step(folder: Path) -> int:
        return int(folder.name.rsplit("-", 1)[1])

    for folder in sorted(work_dir.glob("checkpoint-*[0-9]"), key=step, reverse=True):
        try:
            json.loads((folder / "trainer_state.json").read_text())
        except (OSError, ValueError):
            continue
        return str(folder)
    return None


def prepare_work_dir(work_dir: Path, stamp: str, resume: bool) -> str | None:
    """Claim `work_dir` for this run; return the checkpoint to resume from, if asked and present.

    A checkpoint is resumed only by the run that wrote it (same fingerprint): resuming
    someone else's optimizer state would silently train a different model. Only a
    folder a training run made (it holds run.json) is ever emptied.
    """
    marker = work_dir / RUN_FILE
    if marker.exists():
        if resume and json.loads(marker.read_text()).get("fingerprint") == stamp:
            return last_complete_checkpoint(work_dir)
        if resume:
            raise ValueError(f"{work_dir} holds checkpoints of a different run (other data or settings). "
                             "Run without resume to start over.")
        shutil.rmtree(work_dir)
    elif work_dir.exists() and any(work_dir.iterdir()):
        raise ValueError(f"{work_dir} is not empty and was not made by a training run: "
                         "choose an empty or new folder for checkpoints.")
    work_dir.mkdir(parents=True, exist_ok=True)
    marker.write_text(json.dumps({"fingerprint": stamp}))
    return None


def claim_work_dir(work_dir: Path, stamp: str, resume: bool, device: str) -> str | None:
    """`prepare_work_dir` on rank 0 only; the other processes wait, then find the same checkpoint."""
    if world_size() == 1:
        return prepare_work_dir(work_dir, stamp, resume)
    checkpoint = prepare_work_dir(work_dir, stamp, resume) if is_main_process() else None
    barrier(device)
    return checkpoint or (last_complete_checkpoint(work_dir) if resume else None)


def barrier(device: str) -> None:
    """Wait for every process, starting the process group the `Trainer` will then reuse."""
    import torch.distributed as dist

    if not dist.is_initialized():
        dist.init_process_group(backend="gloo" if device == "cpu" else "nccl")
    dist.barrier()
