"""Serve the student over HTTP on this machine: FastAPI + uvicorn in a background thread.

``POST /predict {"texts": [...]}`` answers every class with its score per text,
most likely first; ``GET /health`` says the server is up. Bad requests get a 4xx
with ``{"error": "..."}`` that names the problem but never echoes the request
(nor anything from the environment). The server binds 127.0.0.1 unless told
otherwise, so a notebook does not expose the model to the network by accident.

A model folder is served by its int8 ONNX copy when ``model-onnx/`` beside it was made
from the same weights (`helpers.deploy.load_model`): same answers, several times faster.
Starting a server under a name already serving stops the old one first, so re-running a
notebook cell never leaves an orphan server holding a port.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path

import httpx
import uvicorn
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, StrictStr
from starlette.exceptions import HTTPException
from transformers import TextClassificationPipeline

from helpers.deploy import class_names, load_model

MAX_BATCH = 64
MAX_BODY_BYTES = 1_000_000


class PredictRequest(BaseModel):
    """The body of POST /predict: a list of texts, nothing else."""

    model_config = ConfigDict(extra="forbid")
    texts: list[StrictStr]


def error(status: int, message: str) -> JSONResponse:
    """The one error shape every failure uses."""
    return JSONResponse({"error": message}, status_code=status)


def validation_message(exc: RequestValidationError) -> str:
    """A short message from pydantic's errors, naming the field but not its value."""
    first = exc.errors()[0]
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    if first.get("type") == "missing" and where:
        return f"field '{where}' is required: send {{\"texts\": [\"...\"]}}"
    if not where or first.get("type") in ("json_invalid", "model_attributes_type", "dict_type"):
        return "the body must be a JSON object like {\"texts\": [\"...\"]}"
    return f"'{where}': {first.get('msg', 'invalid value')}"


class BodyLimit:
    """ASGI middleware answering 413 to bodies over ``limit`` bytes, whether or not the
    client sent Content-Length (chunked bodies are counted as they arrive); the body
    read here is handed on unchanged to the app."""

    def __init__(self, app, limit: int):
        self.app, self.limit = app, limit

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        declared = dict(scope["headers"]).get(b"content-length", b"")
        too_big = declared.isdigit() and int(declared) > self.limit
        body, more = b"", not too_big
        while more and not too_big:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more, too_big = message.get("more_body", False), len(body) > self.limit
        if too_big:
            return await error(413, f"request body is over the limit of {self.limit} bytes")(
                scope, receive, send)
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}
        await self.app(scope, replay, send)


def backend_name(model) -> str:
    """What answers the requests, as /health reports it."""
    return "pytorch" if isinstance(model, TextClassificationPipeline) else "onnx-int8"


def create_app(pipe, max_batch: int = MAX_BATCH, max_body_bytes: int = MAX_BODY_BYTES) -> FastAPI:
    """The FastAPI app for a pipeline or an `OnnxClassifier` (same call, same answers); one
    lock serialises predictions (pipelines are not thread-safe, and two requests at once
    would only share the same cores)."""
    app = FastAPI(title="Student classifier")
    lock = threading.Lock()
    health_body = {"status": "ok", "num_labels": len(class_names(pipe)), "backend": backend_name(pipe)}
    if hasattr(pipe, "recheck_margin"):  # int8: below this gap PyTorch answers instead (0: never)
        health_body["recheck_margin"] = pipe.recheck_margin
    app.add_exception_handler(RequestValidationError,
                              lambda request, exc: error(422, validation_message(exc)))
    app.add_exception_handler(HTTPException, lambda request, exc: error(exc.status_code, str(exc.detail)))

    @app.get("/health")
    def health() -> dict:
        return health_body

    @app.post("/predict")
    async def predict(body: PredictRequest) -> dict:
        # async: the model runs on the event loop itself. A sync endpoint hops to a worker thread
        # and back (~1 ms, as much as the int8 model needs for a short text); the lock serialises
        # predictions anyway, so the thread bought nothing but /health answering during a batch.
        if not body.texts:
            raise HTTPException(422, "'texts' is empty: send at least one text")
        if len(body.texts) > max_batch:
            raise HTTPException(422, f"'texts' holds {len(body.texts)} texts; "
                                     f"at most {max_batch} per request")
        blank = [i for i, text in enumerate(body.texts) if not text.strip()]
        if blank:
            raise HTTPException(422, f"texts[{blank[0]}] is empty: every text needs some words")
        with lock:
            results = pipe(list(body.texts), batch_size=32)
        return {"predictions": [[{"label": r["label"], "score": round(float(r["score"]), 6)} for r in row]
                                for row in results]}

    app.add_middleware(BodyLimit, limit=max_body_bytes)
    return app


@dataclass
class ServerHandle:
    """A running server: ``url`` to call it, ``stop()`` to shut it down and free the port."""

    url: str
    host: str
    port: int
    server: uvicorn.Server
    thread: threading.Thread
    sock: socket.socket

    def stop(self, timeout: float = 10.0) -> None:
        """Finish open requests (forcing after ``timeout`` s), then close the listening socket."""
        self.server.should_exit = True
        self.thread.join(timeout)
        if self.thread.is_alive():
            self.server.force_exit = True
            self.thread.join(timeout)
        self.sock.close()
        for name in [name for name, handle in RUNNING.items() if handle is self]:
            del RUNNING[name]

    def __enter__(self) -> ServerHandle:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


RUNNING: dict[str, ServerHandle] = {}  # servers started in this process, by name


def serve(model, host: str = "127.0.0.1", port: int = 0, max_batch: int = MAX_BATCH,
          max_body_bytes: int = MAX_BODY_BYTES, timeout: float = 30.0, backend: str = "auto",
          name: str = "default", recheck_margin: float | None = None) -> ServerHandle:
    """Start serving a model folder (or an already loaded pipeline / `OnnxClassifier`) in a
    background thread.

    A folder is loaded with ``deploy.load_model(folder, backend, recheck_margin)``: the int8 ONNX copy
    beside it when it matches (``backend="auto"``), PyTorch rechecking its near ties, else PyTorch.
    A server already running under ``name`` in this process is stopped first: re-running the
    notebook cell replaces the server instead of orphaning it. ``port=0`` lets the OS pick a free
    port (read it from ``handle.url``). The socket is bound here, before the thread starts, so the
    port is known and taken at once. Pass ``host="0.0.0.0"`` only behind a proxy that adds TLS and authentication.
    """
    if isinstance(model, (str, Path)):
        model = load_model(Path(model), backend, recheck_margin)
    if name in RUNNING:
        RUNNING.pop(name).stop()
    app = create_app(model, max_batch, max_body_bytes)
    # proto=IPPROTO_TCP, not the default 0: asyncio sets TCP_NODELAY only on sockets that say they
    # are TCP, and without it Nagle's algorithm plus delayed ACKs added ~45 ms to every answer.
    sock = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_STREAM,
                         socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    config = uvicorn.Config(app, log_level="warning", access_log=False, timeout_graceful_shutdown=5)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True, name="uvicorn")
    thread.start()
    if not wait_started(server, thread, timeout):
        server.should_exit = True
        sock.close()
        raise RuntimeError("the server did not start; see the log above")
    bound_host, bound_port = sock.getsockname()[:2]
    url_host = f"[{bound_host}]" if ":" in bound_host else bound_host
    handle = ServerHandle(f"http://{url_host}:{bound_port}", bound_host, bound_port, server, thread, sock)
    RUNNING[name] = handle
    return handle


def wait_started(server: uvicorn.Server, thread: threading.Thread, timeout: float) -> bool:
    """Block until uvicorn reports it is accepting connections (or died / timed out)."""
    event = threading.Event()
    while not server.started and thread.is_alive() and timeout > 0:
        event.wait(0.05)
        timeout -= 0.05
    return server.started


def client_predictor(client: httpx.Client):
    """texts -> the server's predictions through ``client`` (an error answer raises), so
    `deploy.measure_latency` can time the service exactly as a client sees it."""
    def predict(texts: list[str]) -> list:
        response = client.post("/predict", json={"texts": list(texts)})
        response.raise_for_status()
        return response.json()["predictions"]
    return predict
