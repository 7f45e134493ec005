"""The HTTP service: FastAPI app around one loaded :class:`Predictor`.

Routes: ``POST /v1/predict``, ``GET /v1/model``, ``GET /health``, the web page at ``/`` and
the OpenAPI schema at ``/openapi.json`` (interactive docs at ``/docs``).

Guarantees (each one tested in ``tests/serving``):
- every client error is a 4xx with a JSON ``detail`` message, never a 500; the body size
  (413), texts per request and characters per text (422; also stated in the schema) have
  configurable limits;
- a request body that does not arrive within ``body_timeout`` seconds gets 408, so a slow
  client holds nothing but its own connection;
- with an API key, every route but ``/health`` and ``GET /`` (the page: no data, no secret; it
  asks for the key and sends it) wants ``Authorization: Bearer <key>`` (401);
- a ``gzip`` or ``deflate`` body (``Content-Encoding``) is decompressed as it arrives, the
  size limit holding for the decompressed size too (413); other encodings get 415;
- an optional ``threshold`` in [0, 1] per request (default 0.5) sets where the label turns.
"""

from __future__ import annotations

import asyncio
import gc
import hmac
import json
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from importlib import resources
from typing import Any

from fastapi import FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator
from starlette.concurrency import run_in_threadpool

from .. import __version__
from ..models.base import Predictor, result_row

INLINE_CHARS = 20_000  # requests up to this many characters are scored on the event loop
DEFAULT_THRESHOLD = 0.5  # label = probability >= threshold, unless a request says otherwise


@dataclass(frozen=True)
class Limits:
    max_texts: int = 1_000  # texts per request
    max_chars: int = 100_000  # characters per text
    max_body_bytes: int = 10 * 1024 * 1024
    body_timeout: float = 30.0  # seconds for the whole request body to arrive
    max_top_k: int = 50


# -- schema ---------------------------------------------------------------------------------
class PredictRequest(BaseModel):
    # strict: JSON types exactly as the schema states them (no "5" for 5, no 0 for false)
    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"texts": ["The movie was great!", "The movie was terrible..."], "explain": False}]})

    texts: list[str] = Field(description="the texts to score, in order (limits: see GET /v1/model)")
    explain: bool = Field(False, description="also return the words/n-grams that pushed each score up and down")
    top_k: int = Field(10, ge=1, description="features per direction in explanations")
    threshold: float = Field(DEFAULT_THRESHOLD, ge=0, le=1, allow_inf_nan=False,
                             description="probability at which the label turns positive (label = probability "
                                         ">= threshold)")

    @field_validator("top_k", mode="before")
    @classmethod
    def _whole_number(cls, value: Any) -> Any:
        """JSON Schema's integers include 13.0; a strict int would refuse it."""
        return int(value) if isinstance(value, float) and value.is_integer() else value


class Contribution(BaseModel):
    feature: str
    contribution: float = Field(description="added to the logit by this word/n-gram")


class Token(BaseModel):
    token: str
    start: int = Field(description="character offset of the word in the text")
    end: int
    contribution: float


class ExplanationOut(BaseModel):
    logit: float
    bias: float
    positive: list[Contribution]
    negative: list[Contribution]
    tokens: list[Token]


class PredictionOut(BaseModel):
    probability: float = Field(ge=0, le=1, description="probability of the positive class")
    label: int
    label_name: str
    explanation: ExplanationOut | None = None


class PredictResponse(BaseModel):
    predictions: list[PredictionOut]


class Health(BaseModel):
    status: str


class ModelInfo(BaseModel):
    family: str
    format_version: int | None
    reviewsense_version: str | None = Field(description="version that trained the model")
    server_version: str
    created: str | None = Field(description="when the model was trained (UTC)")
    class_names: list[str]
    vocabulary_size: int | None
    explain: bool = Field(description="whether POST /v1/predict can explain this model's scores")
    metrics: dict[str, Any] = Field(description="metrics recorded at training time (test, validation)")
    limits: dict[str, Any]


class Problem(BaseModel):
    detail: str | list[dict[str, Any]]


ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"model": Problem, "description": "invalid Content-Length, or a compressed body that does not decompress"},
    401: {"model": Problem, "description": "missing or wrong API key (when the server has one)"},
    408: {"model": Problem, "description": "the request body did not arrive in time"},
    413: {"model": Problem, "description": "request body (compressed or decompressed) over the server's size limit"},
    415: {"model": Problem, "description": "a Content-Encoding other than gzip, deflate or identity"},
    422: {"model": Problem, "description": "malformed JSON, wrong fields/types, or more texts / longer texts "
                                           "than the server's limits (see GET /v1/model)"},
}


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

    - With an API key, every request but ``/health`` and ``GET /`` (the static page, which asks
      the user for the key) needs ``Authorization: Bearer <key>`` (401), before anything else.
    - Bodies are counted as they arrive: 413 past the limit (at once when Content-Length says
      so), 408 when the body stalls past ``body_timeout``; a gzip/deflate body of
      ``POST /v1/predict`` is decompressed under the same limit (:class:`_Inflater`), any other
      ``Content-Encoding`` is 415.
    - ``POST /v1/predict`` is answered here directly with :func:`handle_predict`: FastAPI's
      routing, dependency and request machinery cost ~0.2 ms a request, a third of the total.
      The FastAPI route of the same name (same handler) declares it in the OpenAPI schema.
    """

    def __init__(self, app, predictor: Predictor, limits: Limits, api_key: str | None,
                 open_paths: frozenset[str] = frozenset({"/health"}),
                 open_pages: frozenset[str] = frozenset({"/"})):
        self.app, self.predictor, self.limits = app, predictor, limits
        self.open_paths, self.open_pages = open_paths, open_pages  # pages: GET only
        self.key = api_key.encode() if api_key else None

    def _open(self, scope) -> bool:
        path = scope["path"]
        return path in self.open_paths or (path in self.open_pages and scope["method"] == "GET")

    def _authorized(self, header: bytes) -> bool:
        scheme, _, token = header.strip().partition(b" ")
        return self.key is not None and scheme.lower() == b"bearer" and hmac.compare_digest(token.strip(), self.key)

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
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
    body = payload if isinstance(payload, bytes) else _dumps(payload)
    if status in (400, 408, 413, 415):  # the rest of that body is not worth reading: close the connection
        headers = [*headers, (b"connection", b"close")]
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            *headers]})
    await send({"type": "http.response.body", "body": body})


def _problems(errors, prefix: tuple = ()) -> list[dict[str, Any]]:
    """Validation errors as ``{loc, msg, type}``, never echoing the input: values are left
    out and long field names (a client's, in an unknown field) are cut short."""
    def short(part):
        return part if not isinstance(part, str) or len(part) <= 40 else part[:37] + "..."
    return [{"loc": [*prefix, *map(short, err.get("loc", ()))], "msg": str(err.get("msg", ""))[:200],
             "type": err.get("type", "")} for err in errors]


async def handle_predict(predictor: Predictor, limits: Limits, body: bytes) -> tuple[int, bytes]:
    """The whole of ``POST /v1/predict``: validate, check limits, score. Returns the status
    and the JSON body (serialized where the work ran: big answers never block the loop)."""
    status, payload = _check_request(predictor, limits, body)
    if status != 200:
        return status, _dumps(payload)
    texts, explain, top_k, threshold = payload
    if sum(map(len, texts)) <= INLINE_CHARS and not (explain and len(texts) > 1):
        return 200, score_json(predictor, texts, explain, top_k, threshold)  # cheaper than a thread hop
    # big work goes to a thread (numpy/polars release the GIL): the event loop keeps serving
    return 200, await run_in_threadpool(score_json, predictor, texts, explain, top_k, threshold)


def _check_request(predictor: Predictor, limits: Limits, body: bytes) -> tuple[int, Any]:
    """(200, (texts, explain, top_k, threshold)) for a valid request, else (4xx, problem)."""
    try:
        request = PredictRequest.model_validate_json(body)
    except ValidationError as exc:
        return 422, {"detail": _problems(exc.errors(include_url=False, include_input=False), ("body",))}
    texts = request.texts
    if len(texts) > limits.max_texts:  # the limits are in the schema too (maxItems, maxLength): 422
        return 422, {"detail": f"{len(texts):,} texts in one request; the limit is {limits.max_texts:,}"}
    for i, text in enumerate(texts):
        if len(text) > limits.max_chars:
            return 422, {"detail": f"texts[{i}] has {len(text):,} characters; the limit is {limits.max_chars:,}"}
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


# -- the app --------------------------------------------------------------------------------
def _validation_problem(_request: Request, exc: Exception) -> JSONResponse:
    """422 with where and what, without echoing the (possibly huge) input back."""
    assert isinstance(exc, RequestValidationError)  # the only exception this handler is registered for
    return JSONResponse({"detail": _problems(exc.errors())}, status_code=422)


def _page() -> str:
    return resources.files("reviewsense.serving").joinpath("static/index.html").read_text(encoding="utf-8")


def _json(payload: Any) -> Response:
    return Response(_dumps(payload), media_type="application/json")


def _dumps(payload: Any) -> bytes:
    return json.dumps(payload, ensure_ascii=False, allow_nan=False).encode()


def score_json(predictor: Predictor, texts: list[str], explain: bool, top_k: int,
               threshold: float = DEFAULT_THRESHOLD) -> bytes:
    return _dumps(score(predictor, texts, explain, top_k, threshold))


def score(predictor: Predictor, texts: list[str], explain: bool, top_k: int,
          threshold: float = DEFAULT_THRESHOLD) -> dict[str, Any]:
    probabilities = predictor.predict_proba(texts)
    names = predictor.class_names
    out = []
    for text, p in zip(texts, probabilities.tolist(), strict=True):
        row = result_row(p, names, threshold)
        if explain:
            e = predictor.explain(text, top_k).to_dict()
            row["explanation"] = {k: e[k] for k in ("logit", "bias", "positive", "negative", "tokens")}
        out.append(row)
    return {"predictions": out}


def request_schema(limits: Limits) -> dict[str, Any]:
    """The JSON schema of a predict request, with this server's limits in it."""
    schema = PredictRequest.model_json_schema()
    texts = schema["properties"]["texts"]
    texts["maxItems"] = limits.max_texts
    texts["items"]["maxLength"] = limits.max_chars
    schema["properties"]["top_k"]["maximum"] = limits.max_top_k
    return schema


def model_info(predictor: Predictor, limits: Limits) -> dict[str, Any]:
    meta = predictor.metadata or {}
    vectorizer = predictor.vectorizer
    return {
        "family": predictor.family,
        "format_version": meta.get("format_version"),
        "reviewsense_version": meta.get("reviewsense_version"),
        "server_version": __version__,
        "created": meta.get("created"),
        "class_names": list(predictor.class_names),
        "vocabulary_size": meta.get("vocabulary_size", getattr(vectorizer, "vocabulary_size", None)),
        "explain": predictor.can_explain,
        "metrics": meta.get("metrics") or {},
        "limits": {"max_texts": limits.max_texts, "max_chars": limits.max_chars,
                   "max_body_bytes": limits.max_body_bytes, "max_top_k": limits.max_top_k},
    }


def create_app(predictor: Predictor, limits: Limits | None = None, api_key: str | None = None) -> FastAPI:
    """The ASGI app serving ``predictor`` (run it with uvicorn, or ``reviewsense serve``)."""
    limits = limits or Limits()
    app = FastAPI(title="reviewsense", version=__version__,
                  description="Sentiment probabilities for raw texts, with explanations.")
    app.add_exception_handler(RequestValidationError, _validation_problem)
    info = model_info(predictor, limits)
    page = _page()

    @app.get("/health", response_model=Health, tags=["service"])
    async def health() -> Response:
        """Liveness: 200 while the server runs (never needs the API key)."""
        return _json({"status": "ok"})

    @app.get("/v1/model", response_model=ModelInfo, responses={401: ERRORS[401]}, tags=["model"])
    async def model() -> Response:
        """The served model: family, versions, training date, recorded metrics, limits."""
        return _json(info)

    @app.post("/v1/predict", response_model=PredictResponse, responses=ERRORS, tags=["model"],
              openapi_extra={"requestBody": {"required": True, "content": {"application/json": {
                  "schema": request_schema(limits)}}}})
    async def predict(request: Request) -> Response:
        """Probability of the positive class for each text, in order; with ``explain``,
        the words and n-grams that pushed each score up and down."""
        status, body = await handle_predict(predictor, limits, await request.body())
        return Response(body, status_code=status, media_type="application/json")

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def index() -> HTMLResponse:
        # static: no data and no secret, so it is served without the API key; it asks for the key
        # when GET /v1/model answers 401 and sends it with every API call
        return HTMLResponse(page)

    app.add_middleware(Gateway, predictor=predictor, limits=limits, api_key=api_key)
    # One prediction (and explanation) before the first request: lazy set-up — the small-batch
    # word index, numba's compiled loops (ASCII word ids, binary features) — is paid here, not by a client.
    predictor.predict_proba(["warm-up", "warm-up, café"])  # ASCII and other texts take different paths
    if predictor.can_explain:
        predictor.explain("warm-up", 1)
    # The model's vocabulary and arrays live as long as the server: move them out of the
    # garbage collector's way, so collections stay short and do not show in tail latency.
    gc.collect()
    gc.freeze()
    return app


ENV_CONFIG = "REVIEWSENSE_SERVE_CONFIG"


def app_from_env() -> FastAPI:
    """App factory for uvicorn worker processes (``reviewsense serve --workers N``): the model
    folder, limits and API key come from ``$REVIEWSENSE_SERVE_CONFIG`` (JSON)."""
    import os

    from ..export import load_model

    config = json.loads(os.environ[ENV_CONFIG])
    return create_app(load_model(config["model"]), Limits(**config["limits"]), config.get("api_key"))

