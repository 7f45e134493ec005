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
- a ``POST`` body must be JSON (``Content-Type: application/json``, or none at all), else 415;
  a request from a web page of another origin (``Origin``) than the server's own and the
  ``cors_origins`` allowed is 403; with ``loopback`` (a server bound to 127.0.0.1), a ``Host``
  other than a loopback name is 400 (DNS rebinding; see :mod:`.origins`);
- a text the model computes a NaN or infinite probability for is 422, never a bare ``NaN``;
- an optional ``threshold`` in [0, 1] per request (default 0.5) sets where the label turns (two
  classes only: a model of more classes answers 422 to a request that sets it).
"""

from __future__ import annotations

import gc
import json
from collections.abc import Sequence
from importlib import resources
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response

from .. import __version__
from ..models.base import Predictor
from .gateway import Gateway, handle_predict, json_bytes
from .origins import parse_origins
from .schema import (
    ERRORS,
    INLINE_CHARS,
    Health,
    Limits,
    ModelInfo,
    PredictResponse,
    request_schema,
    validation_problems,
)

__all__ = ["ENV_CONFIG", "INLINE_CHARS", "Limits", "app_from_env", "create_app"]


# -- the app --------------------------------------------------------------------------------
def _validation_problem(_request: Request, exc: Exception) -> JSONResponse:
    """422 with where and what, without echoing the (possibly huge) input back."""
    assert isinstance(exc, RequestValidationError)  # the only exception this handler is registered for
    return JSONResponse({"detail": validation_problems(exc.errors())}, status_code=422)


def _page() -> str:
    return resources.files("reviewsense.serving").joinpath("static/index.html").read_text(encoding="utf-8")


def _json(payload: Any) -> Response:
    return Response(json_bytes(payload), media_type="application/json")


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


def create_app(predictor: Predictor, limits: Limits | None = None, api_key: str | None = None,
               cors_origins: Sequence[str] = (), loopback: bool = False) -> FastAPI:
    """The ASGI app serving ``predictor`` (run it with uvicorn, or ``reviewsense serve``).

    ``cors_origins``: web pages of these origins (``scheme://host[:port]``, or ``*`` for any)
    may call the API (CORS; none by default: only the server's own page). ``loopback``: the
    server listens on a loopback address, so it answers only requests for a loopback ``Host``."""
    if api_key is not None and not api_key.strip():  # '' would silently mean "no authentication"
        raise ValueError("api_key is empty: pass None to serve without one")
    origins = parse_origins(cors_origins)  # ValueError for one that is not an origin
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

    @app.get("/v1/model", response_model=ModelInfo, responses={k: ERRORS[k] for k in (400, 401, 403)},
             tags=["model"])
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

    app.add_middleware(Gateway, predictor=predictor, limits=limits, api_key=api_key, cors_origins=origins,
                       loopback=loopback)
    if origins:  # outside the gateway: a preflight (OPTIONS) carries no API key
        from starlette.middleware.cors import CORSMiddleware

        app.add_middleware(CORSMiddleware, allow_origins=origins, allow_methods=["GET", "POST"],
                           allow_headers=["authorization", "content-type", "content-encoding"], max_age=600)
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


def app_from_env() -> Any:
    """App factory for uvicorn worker processes (``reviewsense serve --workers N``): the model
    folder, limits, API key, CORS origins and loopback binding come from
    ``$REVIEWSENSE_SERVE_CONFIG`` (JSON); with ``ready_dir``, the worker marks itself loaded there
    once started (:mod:`.readiness`)."""
    import os

    from ..export import load_model

    config = json.loads(os.environ[ENV_CONFIG])
    app = create_app(load_model(config["model"]), Limits(**config["limits"]), config.get("api_key"),
                     config.get("cors_origins", ()), config.get("loopback", False))
    if not config.get("ready_dir"):
        return app
    from .readiness import Lifespan, mark_loaded

    return Lifespan(app, lambda: mark_loaded(config["ready_dir"]))

