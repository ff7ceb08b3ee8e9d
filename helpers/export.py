"""Write the student to model/ (exactly the files deployment needs) and a tarball.

The folder is written to a temporary sibling and renamed into place, so a crash
never leaves a half-written model/ behind. Only safetensors are written.
"""

from __future__ import annotations

import json
import os
import shutil
import tarfile
import tempfile
from pathlib import Path

import pandas as pd

MODEL_FILES = ("config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
               "special_tokens_map.json", "training-logs.csv", "training-logs.json")
LOG_COLUMNS = ["epoch", "step", "train_loss", "validation_loss", "validation_accuracy",
               "validation_f1", "learning_rate", "elapsed_seconds"]


def training_log_rows(log_history: list[dict]) -> pd.DataFrame:
    """One row per evaluation step, joined with the train loss logged at that epoch."""
    train = {e["epoch"]: e for e in log_history if "loss" in e}
    rows = []
    for entry in (e for e in log_history if "eval_loss" in e):
        logged = train.get(entry["epoch"], {})
        rows.append({"epoch": entry["epoch"], "step": entry.get("step"),
                     "train_loss": logged.get("loss"), "validation_loss": entry["eval_loss"],
                     "validation_accuracy": entry.get("eval_accuracy"),
                     "validation_f1": entry.get("eval_f1"), "learning_rate": logged.get("learning_rate"),
                     "elapsed_seconds": entry.get("elapsed_seconds")})
    return pd.DataFrame(rows, columns=LOG_COLUMNS)


def write_special_tokens_map(tokenizer, folder: Path) -> None:
    """Newer transformers keep special tokens in tokenizer_config.json only; deployment
    tooling (and the distil labs layout) still expects this file."""
    path = folder / "special_tokens_map.json"
    if not path.exists():
        tokens = {k: str(v) for k, v in tokenizer.special_tokens_map.items() if isinstance(v, str)}
        path.write_text(json.dumps(tokens, indent=2))


def export_model(model, tokenizer, log_history: list[dict], metadata: dict, out_dir: str | Path,
                 tar_path: str | Path | None = None) -> Path:
    """Write model/ atomically and, if asked, a tarball holding the model/ folder.

    Args:
        model, tokenizer: The trained student.
        log_history: `Trainer.state.log_history` of the chosen student.
        metadata: Run metadata (task, teacher, backbone, parameters, versions, evaluation).
        out_dir: Target folder, replaced as a whole.
        tar_path: Where to write ``<task>-model.tar``; None to skip.
    """
    out_dir = Path(out_dir).resolve()
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".model-", dir=out_dir.parent))
    staging.chmod(0o755)  # mkdtemp makes it private; model/ is meant to be shared
    try:
        write_folder(model, tokenizer, log_history, metadata, staging)
        swap_in(staging, out_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    if tar_path:
        write_tar(out_dir, Path(tar_path))
    return out_dir


def write_folder(model, tokenizer, log_history: list[dict], metadata: dict, folder: Path) -> None:
    """Weights, tokenizer and logs; files outside MODEL_FILES (vocab.txt...) are removed."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    write_special_tokens_map(tokenizer, folder)
    logs = training_log_rows(log_history)
    logs.to_csv(folder / "training-logs.csv", index=False)
    (folder / "training-logs.json").write_text(json.dumps(
        {**metadata, "log": logs.to_dict(orient="records")}, indent=2, default=str))
    for extra in set(os.listdir(folder)) - set(MODEL_FILES):
        (folder / extra).unlink()


def swap_in(staging: Path, out_dir: Path) -> None:
    """Replace out_dir by staging with renames; a README.md already there is kept."""
    readme = out_dir / "README.md"
    if readme.exists():
        shutil.copy2(readme, staging / "README.md")
    old = out_dir.with_name(out_dir.name + ".old")
    if out_dir.exists():
        shutil.rmtree(old, ignore_errors=True)
        out_dir.rename(old)
    staging.rename(out_dir)
    shutil.rmtree(old, ignore_errors=True)


def write_tar(model_dir: Path, tar_path: Path) -> Path:
    """A tarball with the model/ folder at its root, written then renamed."""
    partial = tar_path.with_name(tar_path.name + ".partial")
    with tarfile.open(partial, "w") as tar:
        for name in sorted(os.listdir(model_dir)):
            if name in MODEL_FILES:
                tar.add(model_dir / name, arcname=f"model/{name}")
    partial.replace(tar_path)
    return tar_path
