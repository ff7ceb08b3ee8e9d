"""Make the student smaller and faster: ONNX export plus onnxruntime dynamic int8 quantisation.

ONNX is a portable graph format; onnxruntime runs it without PyTorch. Dynamic
quantisation stores Linear weights as int8 and quantises activations at run time:
about 4x smaller and several times faster on CPU, with slightly different numbers,
so `payoff.payoff_table` reports how often the int8 model still picks the same class.
`OnnxClassifier` answers with the same API as the PyTorch pipeline, so the HTTP
service and `helpers.deploy` can serve either one (`deploy.load_model`). Given the fp32
model as a ``fallback``, it asks it again about near ties only, where int8's small shifts
can flip the class: the int8 speed on most texts, the fp32 answer on every text.
Needs the ``onnx`` package (torch's exporter and the quantiser both use it).
"""

from __future__ import annotations

import copy
import hashlib
import json
import logging
import os
import shutil
import tempfile
import warnings
from pathlib import Path
from typing import Callable

import numpy as np

from helpers.limits import saved_window

ONNX_FILE = "model-int8.onnx"
SOURCE_FILE = "source.json"  # which model.safetensors the int8 file was made from, and how
RECIPE = "dynamic-int8-per-channel-v1"  # change it when the export changes: old copies are then redone
# Below this gap between its two likeliest classes, int8's answer is checked by the fp32 model. On 300
# unlabelled rows of each example task (not test rows) int8 alone flipped 19 of 1,200 texts, all with an
# int8 gap under 0.11 (benchmarks/NOTES.md, "Near ties"); 0.15 leaves room for texts not seen there.
# It is the margin of a copy exported without texts to calibrate on, and the least any copy gets.
RECHECK_MARGIN = 0.15
# With texts, the export measures how far int8 moves the gaps of this very model and sets its margin to
# HEADROOM times the largest move seen: one student's int8 copy moved gaps by up to 0.57 where five others
# stayed under 0.19, so no fixed margin fits every model (benchmarks/NOTES.md, "A margin per model").
HEADROOM = 1.25
CALIBRATION_ROWS = 300  # texts the margin is measured on: seconds of fp32 even for long texts
# A text longer than this (in word pieces) is run alone, never in a batch. Batching pays for short texts
# (2.1-2.9x the texts/s at 16-32 pieces) and less with length (1.7x at 64, 1.2x at 128, none at 256: one
# text already fills the matrix kernels), while int8 takes its activation scale from the whole batch, so a
# long text's answer moved with its neighbours: a mental-health text whose two likeliest classes were 0.49
# apart in int8 flipped in a batch of 4 (benchmarks/NOTES.md, "Long texts run alone").
ALONE_ABOVE = 128
TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def onnx_dir_for(model_dir: str | Path) -> Path:
    """Where the notebook and `export_onnx_int8` put the int8 copy of ``model_dir``: beside it."""
    return Path(model_dir).parent / "model-onnx"


def weights_digest(model_dir: str | Path) -> str:
    """SHA-256 of the weights, so a stale int8 copy of an older model is never served by mistake."""
    digest = hashlib.sha256()
    with open(Path(model_dir) / "model.safetensors", "rb") as weights:
        for block in iter(lambda: weights.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def export_onnx_int8(model_dir: str | Path, out_dir: str | Path, calibration_texts: list[str] | None = None) -> Path:
    """Export to ONNX and quantise weights to int8; return the int8 file.

    Only the int8 file ships in ``out_dir`` (with the tokenizer, config and a
    ``source.json`` naming the weights it came from): the fp32 export is an
    intermediate written to a temporary folder and deleted, and an fp32
    ``model.onnx`` left in ``out_dir`` by an older version is removed.
    With ``calibration_texts`` (unlabelled texts of the task, never test rows; the first
    ``CALIBRATION_ROWS`` are used), ``source.json`` also records the recheck margin this copy
    needs (`calibrate_margin`), which `helpers.deploy.load_model` serves with.
    Uses torch's TorchScript exporter (``dynamo=False``: no onnxscript needed) with
    eager attention so the graph has no SDPA shape branches; batch and sequence
    length stay dynamic. Weights get one int8 scale per output channel (``per_channel``): with one
    scale per matrix the int8 banking student picked another class than PyTorch on 4 of 96 test
    texts and lost 2 points; per channel, 1 of 96 and no points, same size (BENCHMARKS.md).
    """
    import torch
    from onnxruntime.quantization import QuantType, quantize_dynamic
    from transformers import AutoModelForSequenceClassification, AutoTokenizer

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    names = onnx_input_names(tokenizer)
    sample = tokenizer(["a sample", "a longer sample text"], padding=True, return_tensors="pt")
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    with tempfile.TemporaryDirectory(prefix=".onnx-", dir=out_dir) as scratch:
        fp32 = Path(scratch) / "model.onnx"
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")  # tracer notes about constant shapes, harmless here
            torch.onnx.export(model.eval(), tuple(sample[n] for n in names), str(fp32), input_names=names,
                              output_names=["logits"], dynamic_axes=axes, opset_version=17, dynamo=False)
        root, level = logging.getLogger(), logging.getLogger().level
        root.setLevel(logging.ERROR)  # quantize_dynamic logs a "consider pre-processing" hint
        try:
            quantize_dynamic(fp32, Path(scratch) / ONNX_FILE, weight_type=QuantType.QInt8, per_channel=True)
        finally:
            root.setLevel(level)
        os.replace(Path(scratch) / ONNX_FILE, out_dir / ONNX_FILE)
    (out_dir / "model.onnx").unlink(missing_ok=True)
    for name in TOKENIZER_FILES:
        if (model_dir / name).exists():
            shutil.copy2(model_dir / name, out_dir / name)
    source = {"safetensors_sha256": weights_digest(model_dir), "recipe": RECIPE}
    if calibration_texts:
        source |= calibrate_margin(out_dir, model, tokenizer, list(calibration_texts)[:CALIBRATION_ROWS])
    (out_dir / SOURCE_FILE).write_text(json.dumps(source) + "\n")
    return out_dir / ONNX_FILE


def gap_shifts(int8: np.ndarray, fp32: np.ndarray) -> np.ndarray:
    """Per text, how much int8 narrowed the gap between its own first class and another class.

    fp32 picks another class only where that shift exceeds int8's gap between its two likeliest
    classes, so rechecking every text whose int8 gap is under the largest shift a model shows
    catches every flip of that size, near tie or not."""
    rows, top = np.arange(len(int8)), int8.argmax(axis=1)
    moved = (int8[rows, top, None] - int8) - (fp32[rows, top, None] - fp32)
    return moved.max(axis=1)  # 0 for the top class itself, so never negative


def calibrate_margin(onnx_dir: Path, model, tokenizer, texts: list[str]) -> dict:
    """The recheck margin of one int8 copy: ``HEADROOM`` times the largest gap shift (`gap_shifts`)
    on ``texts``, never under ``RECHECK_MARGIN`` nor over 1 (where every text is rechecked).

    int8 answers both one text at a time and in batches, since its activation scale follows the
    batch and a server sees both; fp32 is the model the recheck falls back on."""
    from helpers.student import predict_proba

    fp32 = predict_proba(model, tokenizer, texts, batch_size=32)
    int8 = OnnxClassifier(onnx_dir)
    shifts = np.maximum(gap_shifts(int8.predict_proba(texts), fp32),
                        gap_shifts(int8.predict_proba(texts, batch_size=1), fp32))
    margin = min(1.0, max(RECHECK_MARGIN, HEADROOM * float(shifts.max())))
    return {"recheck_margin": round(margin, 3),
            "calibration": {"texts": len(texts), "largest_gap_shift": round(float(shifts.max()), 4)}}


def recorded_margin(onnx_dir: str | Path) -> float | None:
    """The recheck margin the export chose for this copy (`calibrate_margin`); None when it chose none."""
    try:
        margin = json.loads((Path(onnx_dir) / SOURCE_FILE).read_text()).get("recheck_margin")
    except (OSError, ValueError, AttributeError):
        return None
    return float(margin) if isinstance(margin, (int, float)) and 0 <= margin <= 1 else None


def onnx_input_names(tokenizer) -> list[str]:
    """The model inputs in the order the model's forward() takes them."""
    order = ("input_ids", "attention_mask", "token_type_ids")
    return [n for n in order if n in tokenizer.model_input_names]


def matches(onnx_dir: str | Path, model_dir: str | Path) -> bool:
    """True when ``onnx_dir`` holds an int8 file made from ``model_dir``'s current weights by
    this version's export recipe."""
    source = Path(onnx_dir) / SOURCE_FILE
    if not (Path(onnx_dir) / ONNX_FILE).is_file() or not source.is_file():
        return False
    try:
        recorded = json.loads(source.read_text())
        return recorded.get("recipe") == RECIPE and recorded.get("safetensors_sha256") == weights_digest(model_dir)
    except (ValueError, AttributeError):
        return False


def softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise softmax in float32, stable for large logits."""
    shifted = logits.astype(np.float32) - logits.max(axis=1, keepdims=True)
    exp = np.exp(shifted)
    return exp / exp.sum(axis=1, keepdims=True)


def batches(lengths: list[int], batch_size: int, alone_above: int = ALONE_ABOVE) -> list[np.ndarray]:
    """Row numbers of each batch: texts sorted by length so short ones are not padded to a long one,
    up to ``batch_size`` a batch, and every text over ``alone_above`` word pieces in a batch of its own."""
    order = np.argsort(lengths, kind="stable")
    short = [i for i in order if lengths[i] <= alone_above]
    groups = [np.array(short[start:start + batch_size]) for start in range(0, len(short), batch_size)]
    return groups + [np.array([i]) for i in order if lengths[i] > alone_above]


class OnnxClassifier:
    """The int8 student behind the pipeline's API: ``clf(texts)`` gives, per text, every class
    with its score, most likely first; ``predict_proba(texts)`` the probabilities in label order.

    Texts are cut at the training window (`limits.saved_window`) exactly as the pipeline cuts them.
    Tokenizing goes straight to the Rust tokenizer (the Python wrapper costs more than the
    int8 model on a short text), and a batch is sorted by length first so short texts are
    not padded to the longest one. Dynamic int8 takes its activation scale from the whole
    batch, so a text's scores shift slightly with its batch neighbours (rarely its class): texts
    over ``ALONE_ABOVE`` word pieces, where batching buys little speed, are run alone, and
    ``batch_size=1`` makes every answer independent of the others, at a cost in throughput.
    With a ``fallback`` (texts -> fp32 probabilities of the same model), a text whose two likeliest
    classes are less than ``recheck_margin`` apart gets the fallback's answer instead (`recheck`).
    """

    def __init__(self, onnx_dir: str | Path, threads: int | None = None,
                 fallback: Callable[[list[str]], np.ndarray] | None = None, recheck_margin: float = RECHECK_MARGIN):
        import onnxruntime as ort
        from transformers import AutoTokenizer

        self.path = Path(onnx_dir) / ONNX_FILE
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path} does not exist: run quantize.export_onnx_int8 first")
        config = json.loads((Path(onnx_dir) / "config.json").read_text())
        self.labels = [config["id2label"][str(i)] for i in range(len(config["id2label"]))]
        wrapper = AutoTokenizer.from_pretrained(str(onnx_dir))
        self.tokenizer = wrapper.backend_tokenizer
        self.tokenizer.enable_truncation(saved_window(wrapper, config["max_position_embeddings"]))
        self.tokenizer.no_padding()
        self.pad_id = wrapper.pad_token_id or 0
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads or os.cpu_count() or 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")  # shared CPU: no busy wait
        self.session = ort.InferenceSession(str(self.path), options, providers=["CPUExecutionProvider"])
        self.inputs = [i.name for i in self.session.get_inputs()]
        self.fallback, self.recheck_margin = fallback, recheck_margin if fallback else 0.0
        self.alone_above = ALONE_ABOVE  # benchmarks/serving.py sets it huge to time the old batching
        self.answered = self.rechecked = 0  # texts answered so far, and how many of them the fallback answered

    def predict_proba(self, texts: list[str], batch_size: int = 32) -> np.ndarray:
        """Probabilities, one row per text, columns in the model's label order."""
        texts = list(texts)
        encodings = self.tokenizer.encode_batch(texts)
        self.answered += len(encodings)
        probs = np.zeros((len(encodings), len(self.labels)), dtype=np.float32)
        for rows in batches([len(e.ids) for e in encodings], batch_size, self.alone_above):
            probs[rows] = softmax(self.session.run(None, self.feed([encodings[i] for i in rows]))[0])
        return self.recheck(texts, probs)

    def recheck(self, texts: list[str], probs: np.ndarray) -> np.ndarray:
        """Replace int8's answers on near ties by the fallback's. A flip needs int8 to move the gap
        between two classes by more than the gap, and it moves gaps by a few hundredths, so only
        texts under ``recheck_margin`` can flip: asking fp32 about those alone gives its classes
        at about int8's cost (the fp32 scores on those texts, int8's elsewhere)."""
        if self.fallback is None or not len(probs):
            return probs
        top_two = np.sort(probs, axis=1)[:, -2:]  # a task has two classes at least (task.py)
        close = np.flatnonzero(top_two[:, 1] - top_two[:, 0] < self.recheck_margin)
        if len(close):
            probs[close] = self.fallback([texts[i] for i in close])
            self.rechecked += len(close)
        return probs

    def alone(self) -> OnnxClassifier:
        """This int8 model without its fallback, sharing the loaded session: what int8 answers by
        itself, so the payoff table can show what the recheck costs and buys side by side."""
        single = copy.copy(self)
        single.fallback, single.recheck_margin, single.answered, single.rechecked = None, 0.0, 0, 0
        return single

    def feed(self, encodings: list) -> dict[str, np.ndarray]:
        """Pad a batch to its longest text: ids, mask and token types as int64 arrays."""
        width = max(len(e.ids) for e in encodings)
        arrays = {"input_ids": np.full((len(encodings), width), self.pad_id, dtype=np.int64),
                  "attention_mask": np.zeros((len(encodings), width), dtype=np.int64),
                  "token_type_ids": np.zeros((len(encodings), width), dtype=np.int64)}
        for row, encoding in enumerate(encodings):
            n = len(encoding.ids)
            arrays["input_ids"][row, :n] = encoding.ids
            arrays["attention_mask"][row, :n] = 1
            arrays["token_type_ids"][row, :n] = encoding.type_ids
        return {name: arrays[name] for name in self.inputs}

    def __call__(self, texts: list[str], batch_size: int = 32) -> list[list[dict]]:
        """What ``TextClassificationPipeline(top_k=None)`` answers: every class, most likely first."""
        rows = []
        for probs in self.predict_proba(texts, batch_size):
            rows.append([{"label": self.labels[i], "score": float(probs[i])} for i in np.argsort(-probs)])
        return rows
