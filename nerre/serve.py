"""``nerre serve``: predictions over HTTP with LitServe (Lightning's model server), which batches concurrent
requests.

``POST /predict`` with a JSON body ``{"text": "..."}`` answers one prediction record, the same as a line of
the prediction JSONL that ``nerre predict`` writes (``id``, ``text``, ``entities``, ``relations``,
``defects``, and whatever else the records carry); ``{"texts": ["...", ...]}`` answers
``{"predictions": [record, ...]}`` in the same order. A bad request gets a 4xx status and
``{"error": "one-line reason"}``, and the server goes on: 400 for a body that is not JSON, 413 for a body
over ``max_bytes`` or more than ``max_texts`` texts, 415 for a multipart (file upload) body, 422 for JSON
without a ``text`` string or a ``texts`` list of strings. ``GET /health`` answers ``ok`` once the model is
loaded.

LitServe is an optional dependency: ``pip install 'nerre[serve]'``.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from typing import Any

from nerre.errors import ConfigError

log = logging.getLogger(__name__)

PATH = "/predict"
DEFAULT_MAX_BYTES = 1_000_000
DEFAULT_MAX_TEXTS = 64
HOSTS = ("127.0.0.1", "0.0.0.0", "::")
"""The addresses LitServe listens on."""


@dataclass
class TextsRequest:
    """A checked request: its texts, and whether it sent one ``text`` (answered by one record)."""

    texts: list[str]
    single: bool


def check_body(body: bytes, max_texts: int = DEFAULT_MAX_TEXTS) -> tuple[int, str] | TextsRequest:
    """The request a body holds, or ``(status, reason)`` when it is not one."""
    try:
        data = json.loads(body)
    except (UnicodeDecodeError, ValueError, RecursionError) as err:
        detail = str(err).splitlines()[0][:120] if str(err) else type(err).__name__
        return 400, f"the body is not JSON ({detail}); send {{\"text\": \"...\"}} or {{\"texts\": [\"...\"]}}"
    if not isinstance(data, dict) or ("text" in data) == ("texts" in data):
        return 422, "send a JSON object with a \"text\" string or a \"texts\" list of strings (one of the two)"
    if "text" in data:
        if not isinstance(data["text"], str):
            return 422, "\"text\" must be a string"
        return TextsRequest([data["text"]], single=True)
    texts = data["texts"]
    if not isinstance(texts, list) or not all(isinstance(t, str) for t in texts):
        return 422, "\"texts\" must be a list of strings"
    if len(texts) > max_texts:
        return 413, f"{len(texts)} texts in one request; send at most {max_texts} (the server's --max_texts)"
    return TextsRequest(texts, single=False)


class CheckRequests:
    """ASGI middleware in front of LitServe: reads the body of each ``POST /predict`` up to ``max_bytes`` and
    answers a bad request itself with a 4xx and a one-line reason; a good one goes on with its body.

    Args:
        app: the ASGI app.
        max_bytes: the largest request body accepted.
        max_texts: the most texts in one request.
    """

    def __init__(self, app: Any, max_bytes: int = DEFAULT_MAX_BYTES, max_texts: int = DEFAULT_MAX_TEXTS):
        self.app, self.max_bytes, self.max_texts = app, max_bytes, max_texts

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http" or scope["path"] != PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        kind = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if kind.startswith(b"multipart/"):
            await _reply(send, 415, f"content type {kind.decode('latin-1')!r}: send JSON (application/json)")
            return
        too_big = f"the body is over {self.max_bytes} bytes (the server's --max_bytes); send fewer or shorter texts"
        length = headers.get(b"content-length", b"0")
        if length.isdigit() and int(length) > self.max_bytes:
            await _reply(send, 413, too_big)
            return
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                await _reply(send, 413, too_big)
                return
        checked = check_body(body, self.max_texts)
        if isinstance(checked, tuple):
            await _reply(send, *checked)
            return
        replayed = False

        async def replay() -> dict:
            nonlocal replayed
            if replayed:
                return await receive()
            replayed = True
            return {"type": "http.request", "body": body, "more_body": False}

        # the body is JSON, whatever the content type said (curl -d sends a form's): LitServe reads it as JSON
        scope = {**scope, "headers": [(k, v) for k, v in scope.get("headers") or [] if k != b"content-type"]
                 + [(b"content-type", b"application/json")]}
        await self.app(scope, replay, send)


async def _reply(send: Any, status: int, reason: str) -> None:
    body = json.dumps({"error": reason}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]})
    await send({"type": "http.response.body", "body": body})


def _litserve() -> Any:
    try:
        import litserve
    except ImportError:
        raise ConfigError("nerre serve needs LitServe: pip install 'nerre[serve]' (or pip install litserve)") from None
    return litserve


def build_server(adapter: str, base_model: str | None = None, constrained: bool | None = None, merge: bool = False,
                 precision: str = "32-true", batch_size: int = 8, max_batch_size: int = 8, batch_timeout: float = 0.05,
                 max_bytes: int = DEFAULT_MAX_BYTES, max_texts: int = DEFAULT_MAX_TEXTS, accelerator: str = "auto",
                 devices: int | str = 1, workers_per_device: int = 1, timeout: float = 120) -> Any:
    """The ``litserve.LitServer`` of :func:`serve` (not started); the arguments are :func:`serve`'s."""
    ls = _litserve()
    from nerre.adapter import read_settings
    from nerre.models import inference_dtype

    read_settings(adapter)  # a wrong adapter fails here, not in a worker process
    inference_dtype(precision)  # and a wrong precision

    from nerre.serve_api import ExtractorAPI

    settings = {"adapter": adapter, "base_model": base_model, "constrained": constrained, "batch_size": batch_size,
                "merge": merge, "precision": precision}
    api = ExtractorAPI(settings, max_texts, max_batch_size=max_batch_size,
                       batch_timeout=batch_timeout if max_batch_size > 1 else 0.0, api_path=PATH)
    return ls.LitServer(api, accelerator=accelerator, devices=devices, workers_per_device=workers_per_device,
                        timeout=timeout, middlewares=[(CheckRequests, {"max_bytes": max_bytes, "max_texts": max_texts})])


def serve(*, adapter: str, port: int = 8000, host: str = "127.0.0.1", base_model: str | None = None,
          constrained: bool | None = None, merge: bool = False, precision: str = "32-true", batch_size: int = 8,
          max_batch_size: int = 8,
          batch_timeout: float = 0.05, max_bytes: int = DEFAULT_MAX_BYTES, max_texts: int = DEFAULT_MAX_TEXTS,
          accelerator: str = "auto", devices: int | str = 1, workers_per_device: int = 1,
          timeout: float = 120) -> None:
    """Serve predictions of an adapter over HTTP (LitServe) until stopped (Ctrl-C).

    Args:
        adapter: adapter folder written by ``nerre fit``, or the name of a shipped adapter.
        port: the TCP port.
        host: the address to listen on: 127.0.0.1 (default: this machine only), 0.0.0.0 or ``::`` (every
            interface: anyone who can reach the machine can send requests; put a proxy with authentication in
            front).
        base_model: use this base model instead of the one recorded with the adapter.
        constrained: as ``nerre predict``'s.
        merge: merge the LoRA weights into the base model (faster; same predictions up to float rounding).
        precision: as ``nerre predict``'s: ``32-true`` (default), ``bf16-true`` (faster on a CPU with AMX; a
            prediction can then change with the requests batched with it) or ``auto``.
        batch_size: texts decoded together.
        max_batch_size: requests that LitServe gathers into one prediction call (1: one at a time).
        batch_timeout: seconds LitServe waits for more requests to gather.
        max_bytes: the largest request body (larger ones get 413).
        max_texts: the most texts in one request (more get 413).
        accelerator: ``auto``, ``cpu`` or ``cuda``.
        devices: devices to serve on (LitServe's ``devices``).
        workers_per_device: model copies per device.
        timeout: seconds a request may wait for its answer (then 504).
    """
    if host not in HOSTS:
        raise ConfigError(f"--host {host}: LitServe listens on {', '.join(HOSTS)}; 127.0.0.1 keeps the server to this "
                          "machine, 0.0.0.0 opens it to every interface")
    server = build_server(adapter, base_model=base_model, constrained=constrained, merge=merge, precision=precision,
                          batch_size=batch_size, max_batch_size=max_batch_size, batch_timeout=batch_timeout, max_bytes=max_bytes,
                          max_texts=max_texts, accelerator=accelerator, devices=devices,
                          workers_per_device=workers_per_device, timeout=timeout)
    log.warning("nerre serve: POST JSON {\"text\": ...} or {\"texts\": [...]} to http://%s:%d%s", host, port, PATH)
    server.run(host=host, port=port, generate_client_file=False, num_api_servers=1, log_level="warning")
