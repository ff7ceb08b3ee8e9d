"""Device choice: auto picks CUDA, then MPS, else the CPU; an override is checked; per-device settings.

No GPU here: CUDA and MPS are simulated by monkeypatching torch's availability checks, which is
all `resolve_device` reads. The CPU path is also run for real (the CLI and the Trainer's arguments).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from conftest import make_task

from helpers import device
from helpers.device import DeviceError, resolve_device, teacher_batch_size, trainer_device_args
from helpers.student import StudentConfig, training_arguments

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def hardware(monkeypatch):
    """Pretend this machine has the given GPUs (and whether the CUDA one does bf16)."""
    def set_(cuda: bool = False, mps: bool = False, bf16: bool = True) -> None:
        monkeypatch.setattr(torch.cuda, "is_available", lambda: cuda)
        monkeypatch.setattr(torch.cuda, "is_bf16_supported", lambda *a, **k: bf16)
        monkeypatch.setattr(torch.backends.mps, "is_available", lambda: mps)
    return set_


@pytest.mark.parametrize(("cuda", "mps", "expected"), [(True, True, "cuda"), (False, True, "mps"),
                                                      (False, False, "cpu")])
def test_auto_prefers_cuda_then_mps_then_cpu(hardware, cuda, mps, expected):
    hardware(cuda=cuda, mps=mps)
    assert resolve_device("auto") == resolve_device(None) == expected


def test_an_explicit_device_overrides_auto(hardware):
    hardware(cuda=True, mps=True)
    assert resolve_device("cpu") == "cpu" and resolve_device(" MPS ") == "mps"


@pytest.mark.parametrize(("asked", "says"), [
    ("cuda", "device 'cuda' was asked for but torch sees no CUDA GPU.*use device auto or cpu"),
    ("mps", "device 'mps' was asked for but this machine has no usable Apple GPU.*use device auto or cpu"),
    ("gpu", "unknown device 'gpu': use one of auto, cpu, cuda, mps"),
])
def test_an_unknown_or_absent_device_is_refused_with_what_to_do(hardware, asked, says):
    hardware()
    with pytest.raises(DeviceError, match=says):
        resolve_device(asked)


@pytest.mark.parametrize(("name", "bf16", "flags"), [
    ("cuda", True, {"use_cpu": False, "bf16": True, "fp16": False}),
    ("cuda", False, {"use_cpu": False, "bf16": False, "fp16": True}),
    ("mps", True, {"use_cpu": False, "bf16": False, "fp16": False}),
    ("cpu", True, {"use_cpu": True, "bf16": False, "fp16": False}),
])
def test_mixed_precision_only_on_cuda_bf16_where_the_gpu_has_it(hardware, name, bf16, flags):
    hardware(cuda=True, mps=True, bf16=bf16)
    assert trainer_device_args(name) == flags


def test_on_cpu_the_trainer_gets_the_arguments_it_always_had(tmp_path):
    """Same device and precision as before devices were chosen, so CPU results are unchanged."""
    args = training_arguments(StudentConfig(device="cpu"), 16, 2, tmp_path)
    assert args.use_cpu and not args.bf16 and not args.fp16 and args.device.type == "cpu"
    assert args.per_device_train_batch_size == 8 and args.ddp_backend is None


def test_under_torchrun_on_cpus_gloo_and_the_batch_is_shared(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert trainer_device_args("cpu")["ddp_backend"] == "gloo" and device.per_process_batch(8) == 4
    assert "ddp_backend" not in trainer_device_args("cuda")  # NCCL, the Trainer's default on GPUs


def test_teacher_batch_is_the_users_or_the_devices():
    assert teacher_batch_size("cpu", None) == 1 and teacher_batch_size("cuda", None) > 1
    assert teacher_batch_size("cuda", 2) == 2


def test_teacher_loads_spread_over_gpus_only_for_hf_models_on_cuda(hardware):
    hardware(cuda=True, bf16=False)
    assert device.teacher_load_kwargs("cuda", spread=True) == {"dtype": torch.float16, "device_map": "auto"}
    assert device.teacher_load_kwargs("cuda", spread=False) == {"dtype": torch.float16}  # a GGUF: .to(cuda)
    assert device.teacher_load_kwargs("cpu", spread=True) == {"dtype": torch.bfloat16}


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "helpers", *args], capture_output=True, text=True, cwd=ROOT,
                          timeout=300)


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU: asking for one is fine")
def test_cli_asking_for_an_absent_gpu_stops_before_any_work(tmp_path):
    result = cli("distill", "--task", str(make_task(tmp_path / "data-t")), "--teacher", "seed", "--device", "cuda")
    assert result.returncode == 2 and "device 'cuda' was asked for but torch sees no CUDA GPU" in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "model").exists()


def test_cli_refuses_an_unknown_device_and_lists_the_choices(tmp_path):
    result = cli("distill", "--task", str(make_task(tmp_path / "data-t")), "--device", "tpu")
    assert result.returncode == 2 and "invalid choice: 'tpu'" in result.stderr and "auto" in result.stderr
