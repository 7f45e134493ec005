"""The ASGI gateway in front of the app: API key, body size, time and encoding, and the fast
``POST /v1/predict`` path (the same validation and schema as FastAPI's, without its routing cost)."""

from __future__ import annotations

import asyncio
import hmac
import json
import zlib
from collections.abc import Iterable, Sequence
from typing import Any

from fastapi import HTTPException
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from ..errors import ScoreError
from ..models.base import Predictor, check_finite, result_row
from .origins import content_type_problem, host_name, is_loopback, origin_problem
from .schema import DEFAULT_THRESHOLD, INLINE_CHARS, Limits, PredictRequest, validation_problems


# -- the ASGI guard: API key, body size, body timeout --------------------------------------
class _BodyError(Exception):
    def __init__(self, status: int, detail: str):
        self.status, self.detail = status, detail


ENCODINGS = {b"": None, b"identity": None, b"gzip": 31, b"x-gzip": 31, b"deflate": 15}  # -> zlib wbits


class _Inflater:
    """A gzip or deflate (zlib, RFC 9110) body, decompressed as it arrives and never past
    ``limit`` bytes (413): a small body that inflates to gigabytes is stopped at the limit."""

    def __init__(self, wbits: int, limit: int):
        self.wbits, self.limit, self.size = wbits, limit, 0
        self.parts: list[bytes] = []
        self.stream = zlib.decompressobj(wbits)

    def feed(self, data: bytes) -> None:
        try:
            while data:
                part = self.stream.decompress(data, self.limit + 1 - self.size)  # room: at most 1 byte over
                self.size += len(part)
                if self.size > self.limit:
                    raise _BodyError(413, f"decompressed request body is over the limit of {self.limit:,} bytes")
                self.parts.append(part)
                data = b""
                if self.stream.eof and self.stream.unused_data:  # gzip: another member follows
                    if self.wbits != 31:
                        raise _BodyError(400, "data after the end of the compressed request body")
                    data, self.stream = self.stream.unused_data, zlib.decompressobj(self.wbits)
        except zlib.error:
            raise _BodyError(400, "the request body does not decompress (invalid gzip/deflate data)") from None

    def finish(self) -> bytes:
        if not self.stream.eof:
            raise _BodyError(400, "the compressed request body is truncated")
        return b"".join(self.parts)


class Gateway:
    """Pure ASGI layer in front of the FastAPI app (cheap per request).

    - A server on a loopback address answers only a loopback ``Host`` (400); a request from
      a web page of another origin than the server's own and the CORS origins allowed gets 403
      (see :mod:`.origins`).
    - With an API key, every request but ``/health`` and ``GET /`` (the static page, which asks
      the user for the key) needs ``Authorization: Bearer <key>`` (401), before anything else.
    - ``HEAD`` is answered as ``GET`` (same checks, same status and headers), without the body.
    - Bodies are counted as they arrive: 413 past the limit (at once when Content-Length says
      so), 408 when the body stalls past ``body_timeout``; a gzip/deflate body of
      ``POST /v1/predict`` is decompressed under the same limit (:class:`_Inflater`), any other
      ``Content-Encoding`` is 415, and so is a ``Content-Type`` other than JSON.
    - ``POST /v1/predict`` is answered here directly with :func:`handle_predict`: FastAPI's
      routing, dependency and request machinery cost ~0.2 ms a request, a third of the total.
      The FastAPI route of the same name (same handler) declares it in the OpenAPI schema.
    """

    def __init__(self, app, predictor: Predictor, limits: Limits, api_key: str | None,
                 open_paths: frozenset[str] = frozenset({"/health"}),
                 open_pages: frozenset[str] = frozenset({"/"}),
                 cors_origins: Iterable[str] = (), loopback: bool = False):
        self.app, self.predictor, self.limits = app, predictor, limits
        self.cors_origins, self.loopback = frozenset(cors_origins), loopback
        self.open_paths, self.open_pages = open_paths, open_pages  # pages: GET only
        self.key = api_key.encode() if api_key else None

    def _open(self, scope) -> bool:
        path = scope["path"]
        return path in self.open_paths or (path in self.open_pages and scope["method"] == "GET")

    def _authorized(self, header: bytes) -> bool:
        scheme, _, token = header.strip().partition(b" ")
        return self.key is not None and scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)

    def _browser_problem(self, headers: dict[bytes, bytes]) -> tuple[int, dict[str, str]] | None:
        """(400, …) for a foreign ``Host`` on a loopback server, (403, …) for a foreign
        ``Origin``, else None."""
        host = _text(headers.get(b"host"))
        if self.loopback and host is not None and not is_loopback(host_name(host)):
            return 400, {"detail": f"Host '{host[:100]}' is not this machine: a server on a loopback address answers "
                                   "requests for localhost or 127.0.0.1 only"}
        origin = _text(headers.get(b"origin"))
        if origin is not None:
            problem = origin_problem(origin, host, self.cors_origins)
            if problem is not None:
                return 403, {"detail": problem}
        return None

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        if scope["method"] == "HEAD":  # GET's answer without its body, after GET's checks (the API key)
            scope, send = {**scope, "method": "GET"}, _bodyless(send)
        headers = dict(scope["headers"])
        problem = self._browser_problem(headers)
        if problem is not None:
            return await _send_json(send, *problem)
        if self.key is not None and not self._open(scope) and not self._authorized(
                headers.get(b"authorization", b"")):
            return await _send_json(send, 401, {"detail": "missing or wrong API key: send 'Authorization: Bearer "
                                                          "<key>'"}, [(b"www-authenticate", b"Bearer")])
        limit = self.limits.max_body_bytes
        declared = headers.get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                return await _send_json(send, 400, {"detail": "invalid Content-Length header"})
            if int(declared) > limit:
                return await _send_json(send, 413, {"detail": f"request body of {int(declared):,} bytes is over "
                                                              f"the limit of {limit:,} bytes"})
        deadline = asyncio.get_running_loop().time() + self.limits.body_timeout
        received = 0

        async def guarded_receive():
            nonlocal received
            try:
                async with asyncio.timeout_at(deadline):
                    message = await receive()
            except TimeoutError:
                raise _BodyError(408, f"request body not received within {self.limits.body_timeout:g} s") from None
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyError(413, f"request body is over the limit of {limit:,} bytes")
            return message

        try:
            if scope["path"] == "/v1/predict" and scope["method"] == "POST":
                problem_type = content_type_problem(_text(headers.get(b"content-type")))
                if problem_type is not None:
                    return await _send_json(send, 415, {"detail": problem_type})
                encoding = headers.get(b"content-encoding", b"").strip().lower()
                if encoding not in ENCODINGS:
                    name = encoding[:40].decode("latin-1")
                    return await _send_json(send, 415, {"detail": f"Content-Encoding '{name}' is not supported: "
                                                                  "send gzip, deflate or identity"})
                inflater = _Inflater(ENCODINGS[encoding], limit) if ENCODINGS[encoding] else None
                chunks = []
                while True:
                    message = await guarded_receive()
                    if message["type"] != "http.request":
                        return  # the client went away
                    if inflater is None:
                        chunks.append(message.get("body", b""))
                    else:
                        inflater.feed(message.get("body", b""))
                    if not message.get("more_body", False):
                        break
                body = b"".join(chunks) if inflater is None else inflater.finish()
                status, payload = await handle_predict(self.predictor, self.limits, body)
                return await _send_json(send, status, payload)
            await self.app(scope, _translating(guarded_receive), send)
        except _BodyError as exc:
            await _send_json(send, exc.status, {"detail": exc.detail})


def _text(header: bytes | None) -> str | None:
    return None if header is None else header.decode("latin-1")


def _bodyless(send):
    """``send`` for a HEAD request: the status and headers (Content-Length included) of the
    GET answer, an empty body (the server itself keeps the original scope's HEAD)."""
    async def wrapped(message):
        if message["type"] == "http.response.body":
            message = {**message, "body": b""}
        await send(message)
    return wrapped


def _translating(receive):
    """For FastAPI routes: body errors as HTTPException, which FastAPI answers with that status
    (any other exception raised while it reads a body becomes a 400)."""
    async def wrapped():
        try:
            return await receive()
        except _BodyError as exc:
            raise HTTPException(exc.status, exc.detail) from None
    return wrapped


async def _send_json(send, status: int, payload: Any, headers: Sequence[tuple[bytes, bytes]] = ()) -> None:
    body = payload if isinstance(payload, bytes) else json_bytes(payload)
    if status in (400, 408, 413, 415):  # the rest of that body is not worth reading: close the connection
        headers = [*headers, (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


async def handle_predict(predictor: Predictor, limits: Limits, body: bytes) -> tuple[int, bytes]:
    """The whole of ``POST /v1/predict``: validate, check limits, score. Returns the status
    and the JSON body (serialized where the work ran: big answers never block the loop)."""
    status, payload = _check_request(predictor, limits, body)
    if status != 200:
        return status, json_bytes(payload)
    texts, explain, top_k, threshold = payload
    try:
        if predictor.batch_requests and not explain:  # a network scores many texts at once far better than one by one
            probabilities = await Batcher.of(predictor).predict_proba(texts)
            return 200, json_bytes(score(predictor, texts, explain, top_k, threshold, probabilities))
        if sum(map(len, texts)) <= INLINE_CHARS and not (explain and len(texts) > 1):
            return 200, score_json(predictor, texts, explain, top_k, threshold)  # cheaper than a thread hop
        # big work goes to a thread (numpy/polars release the GIL): the event loop keeps serving
        return 200, await run_in_threadpool(score_json, predictor, texts, explain, top_k, threshold)
    except ScoreError as exc:  # a text the model overflows on: no NaN in JSON, no 500
        return 422, json_bytes({"detail": str(exc)})


class Batcher:
    """The texts of concurrent requests scored together, one batch at a time, in a worker
    thread: a request that arrives while a batch is scored waits for the next one, which takes
    every text waiting then (up to ``max_texts``; a bigger request is a batch of its own). For
    models whose predictor says ``batch_requests`` (a transformer: one forward pass over 64
    texts costs little more than over one, and torch already uses every core)."""

    _open: dict[tuple[int, int], Batcher] = {}  # (predictor, event loop) → its batcher

    def __init__(self, predictor: Predictor, max_texts: int = 256) -> None:
        self.predictor, self.max_texts = predictor, max_texts
        self.waiting: list[tuple[list[str], asyncio.Future]] = []
        self.running = False
        self.task: asyncio.Task | None = None  # held: the loop keeps only a weak reference to its tasks

    @classmethod
    def of(cls, predictor: Predictor) -> Batcher:
        key = (id(predictor), id(asyncio.get_running_loop()))
        if key not in cls._open:
            cls._open = {k: v for k, v in cls._open.items() if k[0] == key[0]}  # a loop closed: forget it
            cls._open[key] = cls(predictor)
        return cls._open[key]

    async def predict_proba(self, texts: list[str]) -> Any:
        future = asyncio.get_running_loop().create_future()
        self.waiting.append((texts, future))
        if not self.running:
            self.running = True
            self.task = asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        try:
            while self.waiting:
                taken: list[tuple[list[str], asyncio.Future]] = []
                count = 0
                while self.waiting and (not taken or count + len(self.waiting[0][0]) <= self.max_texts):
                    taken.append(self.waiting.pop(0))
                    count += len(taken[-1][0])
                texts = [text for request, _ in taken for text in request]
                try:
                    probabilities = await run_in_threadpool(self.predictor.predict_proba, texts)
                except Exception as exc:  # every request of the batch gets the error
                    for _, future in taken:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                start = 0
                for request, future in taken:
                    if not future.done():
                        future.set_result(probabilities[start : start + len(request)])
                    start += len(request)
        finally:
            self.running = False


def _check_request(predictor: Predictor, limits: Limits, body: bytes) -> tuple[int, Any]:
    """(200, (texts, explain, top_k, threshold)) for a valid request, else (4xx, problem)."""
    try:
        request = PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        return 422, {"detail": validation_problems(exc.errors(include_url=False, include_input=False), ("body",))}
    texts = request.texts
    if len(texts) > limits.max_texts:  # the limits are in the schema too (maxItems, maxLength): 422
        return 422, {"detail": f"{len(texts):,} texts in one request; the limit is {limits.max_texts:,}"}
    for i, text in enumerate(texts):
        if len(text) > limits.max_chars:
            return 422, {"detail": f"texts[{i}] has {len(text):,} characters; the limit is {limits.max_chars:,}"}
    if "threshold" in request.model_fields_set and not predictor.binary:
        return 422, {"detail": f"threshold is for two-class models; this one has {predictor.n_classes} classes "
                               "and labels each text with its top class: leave threshold out"}
    if request.top_k > limits.max_top_k:
        return 422, {"detail": f"top_k is at most {limits.max_top_k}"}
    if request.explain:
        if not predictor.can_explain:
            return 422, {"detail": f"explanations are not available for '{predictor.family}' models "
                                   "(GET /v1/model says so in 'explain'); send explain: false"}
        total = sum(map(len, texts))
        if total > limits.max_chars:  # an explanation lists every word: its answer is ~15x the text
            return 422, {"detail": f"with explain, the texts of one request may have {limits.max_chars:,} "
                                   f"characters together (these have {total:,}); split the request"}
    return 200, (texts, request.explain, request.top_k, request.threshold)


def json_bytes(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()


def score_json(predictor: Predictor, texts: list[str], explain: bool, top_k: int,
               threshold: float = DEFAULT_THRESHOLD) -> bytes:
    return json_bytes(score(predictor, texts, explain, top_k, threshold))


def score(predictor: Predictor, texts: list[str], explain: bool, top_k: int,
          threshold: float = DEFAULT_THRESHOLD, probabilities: Any = None) -> dict[str, Any]:
    if probabilities is None:
        probabilities = predictor.predict_proba(texts)
    check_finite(probabilities, text="texts[{index}]")
    names = predictor.class_names
    out = []
    for text, p in zip(texts, probabilities.tolist(), strict=True):
        row = result_row(p, names, threshold)
        if explain:
            e = predictor.explain(text, top_k).to_dict()
            row["explanation"] = {k: e[k] for k in ("explained", "logit", "bias", "positive", "negative", "tokens")
                                  if k in e}
        out.append(row)
    return {"predictions": out}

