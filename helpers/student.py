"""The student: a small encoder (or decoder) with a classification head, trained by `Trainer`.

Gold rows (seed data) are learned with cross-entropy; teacher rows with a
distillation loss on the teacher's soft labels, softened by a temperature and
weighted by how sure the teacher was. Both are one formula: cross-entropy
against a target distribution, so a single `compute_loss` serves them.
"""

from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from datasets import Dataset
from transformers import (
    AutoModelForSequenceClassification,
    AutoTokenizer,
    EarlyStoppingCallback,
    Trainer,
    TrainerCallback,
    TrainingArguments,
    set_seed,
)

from helpers.batching import SimilarLengths
from helpers.checkpoints import claim_work_dir, fingerprint
from helpers.device import per_process_batch, resolve_device, trainer_device_args
from helpers.limits import MIN_WINDOW, saved_window
from helpers.models import quiet_loading, resolve_backbone, set_threads
from helpers.recipes import StudentConfig
from helpers.warmstart import warm_start
from helpers.window import fit_window

EVAL_EVERY_MIN_STEPS = 10


def load_student(backbone: str, classes: list[str], window: int = MIN_WINDOW):
    """Tokenizer and a fresh classification head named with the task's classes.

    The tokenizer carries the training window as its ``model_max_length``, saved with
    the model, so deployment cuts long texts where training did (`limits.saved_window`).

    Decoder LMs (GPT-2 style) have no padding token: the end-of-text token is
    reused and padding goes on the left, so the last position is a real token.
    """
    path, kwargs = resolve_backbone(backbone)
    tokenizer = AutoTokenizer.from_pretrained(path, model_max_length=window, **kwargs)
    with quiet_loading():
        model, info = AutoModelForSequenceClassification.from_pretrained(
            path, num_labels=len(classes), id2label=dict(enumerate(classes)),
            label2id={c: i for i, c in enumerate(classes)}, output_loading_info=True, **kwargs)
    check_only_head_is_new(model, info, backbone)
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
        tokenizer.padding_side = "left"
    model.config.pad_token_id = tokenizer.pad_token_id
    return tokenizer, model


def check_only_head_is_new(model, info: dict, backbone: str) -> None:
    """The classification head is meant to start fresh; any other missing weight is a broken backbone.

    transformers reports both the same way (a LOAD REPORT a learner cannot act on),
    so the report is silenced and this check keeps the part that matters.
    """
    head = tuple(name for name, _ in model.named_children() if name in ("classifier", "score"))
    body = [key for key in info.get("missing_keys", []) if not key.startswith(head)]
    if body or info.get("mismatched_keys"):
        raise ValueError(f"Backbone '{backbone}' lacks weights beyond the new classification head "
                         f"({', '.join(map(str, (body or info['mismatched_keys'])[:5]))}): "
                         "is it a complete model folder?")


def distillation_loss(logits: torch.Tensor, targets: torch.Tensor, weights: torch.Tensor,
                      temperatures: torch.Tensor) -> torch.Tensor:
    """Weighted cross-entropy against target distributions at per-row temperatures.

    With a one-hot target and temperature 1 this is ordinary cross-entropy; with a
    teacher's softened distribution it is the Hinton et al. (2015) KD loss (up to
    the target's constant entropy), scaled by T^2 to keep gradients comparable.
    """
    log_probs = torch.log_softmax(logits / temperatures[:, None], dim=-1)
    per_row = -(targets * log_probs).sum(-1) * temperatures**2
    return (per_row * weights).sum() / weights.sum().clamp(min=1e-8)


class DistillationTrainer(Trainer):
    """`Trainer` whose loss reads soft targets, row weights and temperatures from the batch."""

    def _get_train_sampler(self, train_dataset=None):
        """With ``group_by_length``, `SimilarLengths`: Trainer's own sampler sorts within groups of
        50 batches and not at all under 128 rows, and seed rows are ~40."""
        if self.args.train_sampling_strategy != "group_by_length":
            return super()._get_train_sampler(train_dataset)
        dataset = train_dataset if train_dataset is not None else self.train_dataset
        return SimilarLengths([len(ids) for ids in dataset["input_ids"]], self.args.train_batch_size, self.args.seed)

    def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
        targets = inputs.pop("soft_targets")
        weights = inputs.pop("sample_weight")
        temperatures = inputs.pop("temperature")
        inputs.pop("labels", None)
        outputs = model(**inputs)
        loss = distillation_loss(outputs.logits, targets, weights, temperatures)
        return (loss, outputs) if return_outputs else loss


def collate(tokenizer, max_length: int):
    """Pad a batch of tokenised rows and stack the loss columns."""
    def fn(rows: list[dict]) -> dict:
        batch = tokenizer.pad([{"input_ids": r["input_ids"], "attention_mask": r["attention_mask"]}
                               for r in rows], return_tensors="pt")
        batch["soft_targets"] = torch.tensor([r["soft_targets"] for r in rows], dtype=torch.float32)
        batch["sample_weight"] = torch.tensor([r["sample_weight"] for r in rows], dtype=torch.float32)
        batch["temperature"] = torch.tensor([r["temperature"] for r in rows], dtype=torch.float32)
        batch["labels"] = torch.tensor([r["labels"] for r in rows], dtype=torch.long)
        return batch
    return fn


def gold_rows(frame: pd.DataFrame, classes: list[str]) -> pd.DataFrame:
    """Seed rows as training rows: one-hot targets, weight 1, temperature 1."""
    eye = np.eye(len(classes))
    return pd.DataFrame({"text": frame["text"].tolist(),
                         "soft_targets": [eye[classes.index(c)].tolist() for c in frame["label"]],
                         "sample_weight": 1.0, "temperature": 1.0, "source": "gold"})


def to_dataset(rows: pd.DataFrame, tokenizer, max_length: int) -> Dataset:
    """Tokenise training rows into a `datasets.Dataset`."""
    encoded = tokenizer(rows["text"].tolist(), truncation=True, max_length=max_length)
    return Dataset.from_dict({
        "input_ids": encoded["input_ids"], "attention_mask": encoded["attention_mask"],
        "soft_targets": rows["soft_targets"].tolist(), "sample_weight": rows["sample_weight"].tolist(),
        "temperature": rows["temperature"].tolist(),
        "labels": [int(np.argmax(t)) for t in rows["soft_targets"]]})


def compute_metrics(prediction) -> dict:
    """Validation accuracy and macro-F1; ``score`` breaks accuracy ties by loss."""
    from helpers.evaluate import macro_f1

    logits, labels = prediction.predictions, prediction.label_ids
    pred = logits.argmax(-1)
    shifted = logits - logits.max(-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(-1, keepdims=True))
    loss = float(-log_probs[np.arange(len(labels)), labels].mean())
    accuracy = float((pred == labels).mean())
    return {"accuracy": accuracy, "f1": macro_f1(labels, pred), "score": accuracy - 1e-3 * loss}


class PatientEarlyStopping(EarlyStoppingCallback):
    """Early stopping that never stops before `min_steps` updates.

    With ~16 seed rows an epoch is two steps: plain epoch-wise patience stopped
    training after ~20 steps, long before the head had learnt anything.
    """

    def __init__(self, patience: int, min_steps: int):
        super().__init__(early_stopping_patience=patience)
        self.min_steps = min_steps

    def on_evaluate(self, args, state, control, metrics, **kwargs):
        super().on_evaluate(args, state, control, metrics, **kwargs)
        if state.global_step < self.min_steps:
            control.should_training_stop = False


class ElapsedTime(TrainerCallback):
    """Stamp every log entry with seconds since training began (for training-logs)."""

    def on_train_begin(self, args, state, control, **kwargs):
        self.start = time.perf_counter()

    def on_log(self, args, state, control, logs=None, **kwargs):
        if logs is not None:
            logs["elapsed_seconds"] = round(time.perf_counter() - self.start, 2)


def planned_epochs(config: StudentConfig, n_rows: int, n_classes: int) -> int:
    """EPOCHS, cut to the whole epochs that fit in `config.max_steps` (at least one), then
    raised until training reaches `config.floor_steps` updates.

    Five epochs over 1,000 long teacher-labelled texts were ~650 updates per student, and
    a run trains up to four such students (guard folds, refit): 36 minutes on 2 cores.
    The cap binds only on corpora of more than ~500 rows; the floor still wins on many classes.
    """
    steps_per_epoch = max(1, math.ceil(n_rows / config.batch_size))
    epochs = min(config.epochs, max(1, config.max_steps // steps_per_epoch)) if config.max_steps else config.epochs
    return max(epochs, math.ceil(config.floor_steps(n_classes) / steps_per_epoch))


def training_arguments(config: StudentConfig, n_rows: int, n_classes: int, output_dir: Path
                       ) -> TrainingArguments:
    """Evaluation and checkpoints every epoch (or every 10 steps, if epochs are shorter).

    Enough epochs for `config.floor_steps` updates. On 16 seed rows an epoch is two steps,
    so epoch-wise patience would mean a handful of steps; counted in evaluations
    of at least 10 steps it means something on every task size.
    """
    steps_per_epoch = max(1, math.ceil(n_rows / config.batch_size))
    epochs = planned_epochs(config, n_rows, n_classes)
    every = max(steps_per_epoch, EVAL_EVERY_MIN_STEPS)
    return TrainingArguments(
        output_dir=str(output_dir), num_train_epochs=epochs, learning_rate=config.learning_rate,
        per_device_train_batch_size=per_process_batch(config.batch_size), per_device_eval_batch_size=64,
        warmup_steps=max(1, int(0.1 * epochs * steps_per_epoch)), weight_decay=0.01,
        eval_strategy="steps", eval_steps=every, save_strategy="best", logging_strategy="steps",
        logging_steps=every,
        save_total_limit=1, load_best_model_at_end=True,
        metric_for_best_model="score", greater_is_better=True, seed=config.seed,
        data_seed=config.seed, full_determinism=True, report_to="none",
        train_sampling_strategy="group_by_length" if config.group_by_length else "random",
        dataloader_num_workers=0, remove_unused_columns=False,
        **trainer_device_args(resolve_device(config.device)))


@dataclass
class TrainedStudent:
    """A trained student plus what happened while training it."""

    model: object
    tokenizer: object
    log_history: list[dict]
    validation: dict
    train_seconds: float
    config: StudentConfig
    resumed_from: str | None = None
    warm_start: dict = field(default_factory=dict)

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> np.ndarray:
        return predict_proba(self.model, self.tokenizer, texts, self.config.max_length, batch_size)

    def to_dict(self) -> dict:
        return {"validation": self.validation, "train_seconds": self.train_seconds,
                "config": asdict(self.config), "resumed_from": self.resumed_from, "warm_start": self.warm_start}


def train_student(rows: pd.DataFrame, validation: pd.DataFrame, classes: list[str],
                  config: StudentConfig, work_dir: Path, progress: bool = True,
                  resume: bool = False, align_texts: list[str] = ()) -> TrainedStudent:
    """Fine-tune a fresh student on training rows; keep the best validation epoch.

    Checkpoints (weights, optimizer, scheduler and random state) go to `work_dir`;
    with ``resume`` a run killed part-way continues from its last checkpoint.
    `align_texts` (unlabelled, never the validation or test rows) also feed the
    warm start's label-free alignment. A window of 0 is chosen from the rows'
    texts (`fit_window`); `distill` chooses it once from the task instead, so that
    student-base and student-tuned read the same window.
    """
    work_dir = Path(work_dir)
    config = fit_window(config, rows["text"].tolist() + list(align_texts))
    checkpoint = claim_work_dir(work_dir, fingerprint(rows, validation, classes, config), resume,
                                resolve_device(config.device))
    set_threads()
    set_seed(config.seed, deterministic=True)
    tokenizer, model = load_student(config.backbone, classes, config.max_length)
    warmed = {} if checkpoint else warm_start(model, tokenizer, rows, config.warm_start, config.max_length,
                                               config.align_epochs, config.seed, align_texts,
                                               config.align_min_steps)
    trainer = DistillationTrainer(
        model=model, args=training_arguments(config, len(rows), len(classes), work_dir),
        train_dataset=to_dataset(rows, tokenizer, config.max_length),
        eval_dataset=to_dataset(gold_rows(validation, classes), tokenizer, config.max_length),
        data_collator=collate(tokenizer, config.max_length), compute_metrics=compute_metrics,
        callbacks=[PatientEarlyStopping(config.patience, config.floor_steps(len(classes))), ElapsedTime()])
    trainer.args.disable_tqdm = not progress
    start = time.perf_counter()
    trainer.train(resume_from_checkpoint=checkpoint)
    seconds = time.perf_counter() - start
    metrics = trainer.evaluate()
    return TrainedStudent(trainer.model.eval(), tokenizer, trainer.state.log_history,
                          {k.removeprefix("eval_"): v for k, v in metrics.items()}, seconds, config,
                          checkpoint and Path(checkpoint).name, warmed)


def predict_proba(model, tokenizer, texts: list[str], max_length: int | None = None,
                  batch_size: int = 64) -> np.ndarray:
    """Class probabilities for texts, in batches, without gradients; read in `max_length`
    word pieces, by default the window the model was trained with (`saved_window`)."""
    max_length = max_length or saved_window(tokenizer, model.config.max_position_embeddings)
    chunks = []
    with torch.inference_mode():
        for start in range(0, len(texts), batch_size):
            batch = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                              max_length=max_length, return_tensors="pt").to(model.device)
            chunks.append(torch.softmax(model(**batch).logits.float(), dim=-1).cpu().numpy())
    return np.concatenate(chunks) if chunks else np.zeros((0, model.config.num_labels))
