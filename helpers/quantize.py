"""Make the student smaller and faster: ONNX export plus onnxruntime dynamic int8 quantisation.

ONNX is a portable graph format; onnxruntime runs it without PyTorch. Dynamic
quantisation stores Linear weights as int8 and quantises activations at run time:
about 4x smaller and usually faster on CPU, with slightly different numbers, so
`compare_onnx` reports how often the int8 model still picks the same class.
Needs the ``onnx`` package (torch's exporter and the quantiser both use it).
"""

from __future__ import annotations

import logging
import shutil
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

from helpers.deploy import MAX_LENGTH, Predictor, load_pipeline, measure_latency, pipeline_proba

TOKENIZER_FILES = ("config.json", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


def export_onnx_int8(model_dir: str | Path, out_dir: str | Path) -> Path:
    """Export to ONNX (fp32) and quantise weights to int8; return the int8 file.

    Uses torch's TorchScript exporter (``dynamo=False``: no onnxscript needed) with
    eager attention so the graph has no SDPA shape branches; batch and sequence
    length stay dynamic. Dynamic quantisation stores Linear weights as int8 and
    quantises activations at run time: ~4x smaller, usually faster on CPU.
    Tokenizer and config files are copied so ``out_dir`` is self-contained.
    """
    from onnxruntime.quantization import QuantType, quantize_dynamic

    model_dir, out_dir = Path(model_dir), Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = AutoModelForSequenceClassification.from_pretrained(str(model_dir), attn_implementation="eager")
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir))
    names = onnx_input_names(tokenizer)
    sample = tokenizer(["a sample", "a longer sample text"], padding=True, return_tensors="pt")
    axes = {n: {0: "batch", 1: "sequence"} for n in names} | {"logits": {0: "batch"}}
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer notes about constant shapes, harmless here
        torch.onnx.export(model.eval(), tuple(sample[n] for n in names), str(out_dir / "model.onnx"),
                          input_names=names, output_names=["logits"], dynamic_axes=axes,
                          opset_version=17, dynamo=False)
    root, level = logging.getLogger(), logging.getLogger().level
    root.setLevel(logging.ERROR)  # quantize_dynamic logs a "consider pre-processing" hint
    try:
        quantize_dynamic(out_dir / "model.onnx", out_dir / "model-int8.onnx", weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    for name in TOKENIZER_FILES:
        if (model_dir / name).exists():
            shutil.copy2(model_dir / name, out_dir / name)
    return out_dir / "model-int8.onnx"


def onnx_input_names(tokenizer) -> list[str]:
    """The model inputs in the order the model's forward() takes them."""
    order = ("input_ids", "attention_mask", "token_type_ids")
    return [n for n in order if n in tokenizer.model_input_names]


def onnx_predictor(onnx_path: str | Path, tokenizer, batch_size: int = 32) -> Predictor:
    """A texts->probabilities function running an ONNX model with onnxruntime on CPU."""
    import onnxruntime as ort

    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]

    def predict(texts: list[str]) -> np.ndarray:
        chunks = []
        for start in range(0, len(texts), batch_size):
            enc = tokenizer(texts[start:start + batch_size], padding=True, truncation=True,
                            max_length=MAX_LENGTH, return_tensors="np")
            logits = session.run(None, {n: enc[n].astype(np.int64) for n in names})[0]
            chunks.append(torch.softmax(torch.from_numpy(logits).float(), -1).numpy())
        return np.concatenate(chunks)
    return predict


def compare_onnx(model_dir: str | Path, onnx_path: str | Path, texts: list[str], runs: int = 30,
                 pipe=None) -> pd.DataFrame:
    """PyTorch vs ONNX int8 side by side: latency, throughput, size, and how often the
    top class agrees (quantisation changes numbers slightly; agreement shows if it matters).
    Pass an already loaded ``pipe`` to skip loading the PyTorch model again."""
    pipe = pipe or load_pipeline(model_dir)
    onnx = onnx_predictor(onnx_path, pipe.tokenizer)
    torch_probs, onnx_probs = pipeline_proba(pipe, texts), onnx(texts)
    weights = Path(model_dir) / "model.safetensors"
    table = pd.DataFrame({"pytorch": measure_latency(pipe, texts, runs=runs, size_path=weights),
                          "onnx-int8": measure_latency(onnx, texts, runs=runs, size_path=onnx_path)}).T
    table["speedup_p50"] = table.loc["pytorch", "p50_ms"] / table["p50_ms"]
    table["agreement"] = [1.0, float((torch_probs.argmax(1) == onnx_probs.argmax(1)).mean())]
    table["max_prob_diff"] = [0.0, float(np.abs(torch_probs - onnx_probs).max())]
    return table
