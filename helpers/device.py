"""Which hardware runs the student and the local teachers, and how each is set up for it.

``auto`` picks CUDA when a GPU is there, then Apple's MPS, else the CPU, so a class on
Colab or a lab GPU gets GPU speed without editing anything; ``DEVICE`` in the notebook
and ``--device`` on the CLI override it. What changes per device:
- the student's `Trainer`: mixed precision on CUDA (bf16 where the GPU has it, else fp16;
  bf16 needs no loss scaling), full precision on MPS and CPU;
- local teachers: weights in bf16 on CPU (measured faster here, see `load_causal_lm`),
  bf16/fp16 on a GPU, and ``hf:`` models spread over the GPUs by accelerate
  (``device_map="auto"``) so one too big for one card still loads;
- the teacher's default batch: 1 on CPU (batching was slower on 2 cores), larger on a GPU.

Only the CPU path is tested here (no GPU on our machines); see the README.
"""

from __future__ import annotations

import os

import torch

DEVICES = ("auto", "cpu", "cuda", "mps")
TEACHER_BATCH = {"cpu": 1, "cuda": 16, "mps": 4}


class DeviceError(ValueError):
    """A requested device that does not exist or is not usable on this machine."""


def cuda_available() -> bool:
    """Whether torch sees a usable CUDA GPU (a CPU-only build of torch never does)."""
    return torch.cuda.is_available()


def mps_available() -> bool:
    """Whether torch can use Apple's Metal GPU (MPS); False on anything but a recent Mac."""
    backend = getattr(torch.backends, "mps", None)
    return bool(backend and backend.is_available())


def best_device() -> str:
    """The fastest device present: CUDA, then MPS, then the CPU."""
    if cuda_available():
        return "cuda"
    return "mps" if mps_available() else "cpu"


def resolve_device(requested: str | None = "auto") -> str:
    """``auto`` (or None) to the best device present; an explicit one checked, with a fix if unusable.

    A typo or a GPU that is not there must stop the run at once with a message a learner
    can act on, not fall back silently to a CPU run that takes hours instead of minutes.
    """
    name = (requested or "auto").strip().lower()
    if name not in DEVICES:
        raise DeviceError(f"unknown device {requested!r}: use one of {', '.join(DEVICES)} "
                          "(auto picks cuda, then mps, then cpu)")
    if name == "auto":
        return best_device()
    if name == "cuda" and not cuda_available():
        raise DeviceError("device 'cuda' was asked for but torch sees no CUDA GPU "
                          f"(torch {torch.__version__}): use device auto or cpu, or install a CUDA build "
                          "of torch on a machine with an NVIDIA GPU")
    if name == "mps" and not mps_available():
        raise DeviceError("device 'mps' was asked for but this machine has no usable Apple GPU (MPS): "
                          "use device auto or cpu")
    return name


def mixed_precision(device: str) -> dict[str, bool]:
    """The `TrainingArguments` precision flags: bf16 on a CUDA GPU that has it, fp16 on older
    ones, none elsewhere (CPU autocast is slower than fp32 here; MPS fp16 training is fragile)."""
    if device != "cuda":
        return {"bf16": False, "fp16": False}
    bf16 = torch.cuda.is_bf16_supported()
    return {"bf16": bf16, "fp16": not bf16}


def world_size() -> int:
    """Processes in this run: torchrun and accelerate launch set WORLD_SIZE; 1 when run plainly."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def is_main_process() -> bool:
    """Rank 0 (or the only process): the one that writes model/, logs and the report."""
    return int(os.environ.get("RANK", "0")) == 0


def trainer_device_args(device: str) -> dict:
    """Device keyword arguments for `TrainingArguments`: CPU or GPU, precision, and gloo for
    several processes on CPUs (NCCL, the default, needs GPUs)."""
    args = {"use_cpu": device == "cpu", **mixed_precision(device)}
    if device == "cpu" and world_size() > 1:
        args["ddp_backend"] = "gloo"
    return args


def per_process_batch(batch_size: int) -> int:
    """Rows per process and step, so that N processes together take the recipe's batch size:
    the number of steps, and so the recipe, stays what one process would do."""
    return max(1, batch_size // world_size())


def teacher_dtype(device: str) -> torch.dtype:
    """Weights of a local teacher: bf16 on CPU and on GPUs that have it, fp16 on older GPUs and MPS."""
    if device == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.float16 if device == "mps" else torch.bfloat16


def teacher_load_kwargs(device: str, spread: bool) -> dict:
    """`from_pretrained` arguments for a local teacher; ``spread`` lets accelerate place a big
    ``hf:`` model over all GPUs (and CPU memory if it must) instead of failing on one card."""
    kwargs = {"dtype": teacher_dtype(device)}
    if device == "cuda" and spread:
        kwargs["device_map"] = "auto"
    return kwargs


def teacher_batch_size(device: str, requested: int | None) -> int:
    """The ``?batch=`` a user gave, else the device's default (1 on CPU, more on a GPU)."""
    return requested if requested is not None else TEACHER_BATCH[device]
