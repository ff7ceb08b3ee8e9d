"""A real llama.cpp server (llama-cpp-python's) with the shipped SmolLM2 GGUF, for the HTTP-teacher
tests and benchmarks/http_concurrency.py. It answers one request at a time (the server holds a lock
around the model), so it shows what concurrency costs or saves on the client side, not a serving
engine's batching.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

from conftest import require_module

from helpers.models import smollm2_gguf

SERVER_WAIT_S = 120


def free_port() -> int:
    """A port nobody listens on right now (the OS picks it)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for_models(url: str, proc: subprocess.Popen, log: Path) -> None:
    """Poll /v1/models until it answers; fail with the server log if it dies or hangs."""
    deadline = time.monotonic() + SERVER_WAIT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"llama.cpp server exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.5)
    raise RuntimeError(f"llama.cpp server did not answer within {SERVER_WAIT_S}s:\n{log.read_text()[-3000:]}")


@contextlib.contextmanager
def llama_server(port: int, log: Path) -> Iterator[tuple[str, subprocess.Popen]]:
    """A llama.cpp OpenAI-compatible server with SmolLM2 on `port`, always stopped after."""
    require_module("llama_cpp.server", "pip install 'llama-cpp-python[server]==0.3.36'")
    cmd = [sys.executable, "-m", "llama_cpp.server", "--model", str(smollm2_gguf()), "--model_alias", "smollm2",
           "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096"]
    with log.open("wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}/v1"
        wait_for_models(url, proc, log)
        yield url, proc
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


