"""The HTTP service (``reviewsense.serving.app``): behaviour, client errors, limits, the API
key, a real uvicorn server (slow clients) and ``reviewsense serve``."""

from __future__ import annotations

import importlib.util
import json
import math
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from processes import group_alive

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from fastapi.testclient import TestClient  # noqa: E402

import reviewsense  # noqa: E402
from reviewsense.export import load_model, save_model  # noqa: E402
from reviewsense.serving.app import INLINE_CHARS, Limits, create_app  # noqa: E402

LIMITS = Limits(max_texts=8, max_chars=5_000, max_body_bytes=2 * 1024 * 1024, body_timeout=5.0, max_top_k=20)
KEY = "s3cret"
TEXTS = [
    "A GREAT film, I Loved it!",
    "The plot was dull and boring.",
    "",
    "<br />Wonderful acting &amp; a superb story",
    "awful awful awful, hated every minute",
    "Ünïcödé and 🎬 emoji: great",
]
METRICS = {"test": {"accuracy": 0.91, "roc_auc": 0.97}, "validation": {"accuracy": 0.9}}


@pytest.fixture(scope="module")
def model_dir(predictor, tmp_path_factory):
    """The model exported with metrics (what ``reviewsense serve --model`` loads)."""
    return save_model(predictor, tmp_path_factory.mktemp("served") / "model", metrics=METRICS)


@pytest.fixture(scope="module")
def client(predictor):
    return TestClient(create_app(predictor, LIMITS))


@pytest.fixture(scope="module")
def keyed(predictor):
    return TestClient(create_app(predictor, LIMITS, api_key=KEY))


def _predict(client, payload, **kwargs):
    return client.post("/v1/predict", json=payload, **kwargs)


def _assert_problem(response, status):
    """A client error: the status, a JSON body with a non-empty ``detail``."""
    assert response.status_code == status, response.text[:500]
    assert response.headers["content-type"].startswith("application/json")
    assert response.json()["detail"]


# -- predictions ---------------------------------------------------------------------------
def test_predictions_are_the_models_probabilities_in_request_order(client, predictor):
    """One prediction per text, in order, equal to ``predict_proba``; label and label_name follow p ≥ 0.5."""
    for texts in (TEXTS, TEXTS[::-1]):
        response = _predict(client, {"texts": texts})
        assert response.status_code == 200
        predictions = response.json()["predictions"]
        expected = predictor.positive_proba(texts)
        assert len(predictions) == len(texts)
        for row, p in zip(predictions, expected, strict=True):
            assert set(row) == {"probability", "label", "label_name"}  # no explanation unless asked
            assert 0.0 <= row["probability"] <= 1.0
            assert row["probability"] == pytest.approx(float(p), abs=1e-6)
            assert row["label"] == int(row["probability"] >= 0.5)
            assert row["label_name"] == predictor.class_names[row["label"]]
    great, awful = _predict(client, {"texts": ["great wonderful film", "awful boring film"]}).json()["predictions"]
    assert great["label_name"] == "positive" and awful["label_name"] == "negative"


def test_empty_list_gives_empty_predictions(client):
    """No texts is a valid request: 200 and no predictions."""
    response = _predict(client, {"texts": []})
    assert response.status_code == 200
    assert response.json() == {"predictions": []}


def test_big_requests_scored_off_the_event_loop_give_the_same_answers(client, predictor):
    """Past INLINE_CHARS characters (and explanations of several texts) the work moves to a
    thread: the results are the same."""
    texts = [" ".join(["great film and a dull plot"] * 180)] * 5 + TEXTS[:2]
    assert sum(map(len, texts)) > INLINE_CHARS
    predictions = _predict(client, {"texts": texts}).json()["predictions"]
    np.testing.assert_allclose([p["probability"] for p in predictions], predictor.positive_proba(texts), atol=1e-6)
    explained = _predict(client, {"texts": TEXTS[:3], "explain": True}).json()["predictions"]
    assert [p["probability"] for p in explained] == [p["probability"] for p in
                                                     _predict(client, {"texts": TEXTS[:3]}).json()["predictions"]]


def test_explanations_add_up_to_the_logit_and_point_into_the_text(client, predictor):
    """``explain``: sorted positive/negative lists, contributions + bias = logit = the model's
    logit, and every token's span slices the original text to that token."""
    response = _predict(client, {"texts": TEXTS, "explain": True, "top_k": LIMITS.max_top_k})
    assert response.status_code == 200
    logits = predictor.predict_logits(TEXTS)
    for text, row, logit in zip(TEXTS, response.json()["predictions"], logits, strict=True):
        e = row["explanation"]
        assert set(e) == {"logit", "bias", "positive", "negative", "tokens"}
        assert e["logit"] == pytest.approx(float(logit), abs=1e-4)
        assert row["probability"] == pytest.approx(1 / (1 + math.exp(-e["logit"])), abs=1e-5)
        up = [c["contribution"] for c in e["positive"]]
        down = [c["contribution"] for c in e["negative"]]
        assert all(c > 0 for c in up) and up == sorted(up, reverse=True)
        assert all(c < 0 for c in down) and down == sorted(down)
        assert len(up) < LIMITS.max_top_k and len(down) < LIMITS.max_top_k  # short texts: every feature is listed
        assert e["bias"] + sum(up) + sum(down) == pytest.approx(e["logit"], abs=1e-4)
        for token in e["tokens"]:
            assert 0 <= token["start"] < token["end"] <= len(text)
            assert text[token["start"]:token["end"]].lower() == token["token"]
        starts = [t["start"] for t in e["tokens"]]
        assert starts == sorted(starts)
    first = response.json()["predictions"][0]["explanation"]
    assert [t["token"] for t in first["tokens"]] == ["a", "great", "film", ",", "i", "loved", "it", "!"]
    assert {"great", "loved"} <= {c["feature"] for c in first["positive"]}
    # every word of the first text is found, so the token shares add up to the logit as well
    assert first["bias"] + sum(t["contribution"] for t in first["tokens"]) == pytest.approx(first["logit"], abs=1e-4)


# letters whose lowercase is longer (İ), or differs by context (Σ), combining marks, ß/ẞ,
# emoji (one code point, two UTF-16 units), joiners, tags and entities, cased symbols (Ⓐ)
UNICODE = st.lists(st.sampled_from(["İ", "i", "I", "ı", "\u0307", "\u0301", "e", "é", "ß", "ẞ", "Σ", "σ", "ς",
                                    "Ⓐ", "🎬", "👍🏽", "\u200d", "👩", "𝔊", "ǅ", "ﬁ", " ", "\n", ",", "'", "<", ">",
                                    "&", "amp;", "great", "film", "awful", "A"]), max_size=30).map("".join) \
    | st.text(max_size=40)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=UNICODE)
def test_token_spans_slice_any_unicode_text_to_its_token(client, text):
    """Token spans are code-point offsets into the original text: for any Unicode (İ, whose
    lowercase is two code points, emoji, combining marks, ß, Σ…) ``text[start:end]``
    lowercases to the token, the spans are in order without overlap, and every word of a text
    without tags or entities is found (so the token shares add up to the logit)."""
    from reviewsense.text.ngrams import tokenize

    response = _predict(client, {"texts": [text], "explain": True, "top_k": 1})
    assert response.status_code == 200, response.text[:300]
    e = response.json()["predictions"][0]["explanation"]
    at = 0
    for token in e["tokens"]:
        assert at <= token["start"] < token["end"] <= len(text), (token, text)
        # Σ lowercases to σ or ς by what follows it: the same letter
        assert text[token["start"]:token["end"]].lower().replace("ς", "σ") == token["token"].replace("ς", "σ")
        at = token["end"]
    if "<" not in text and "&" not in text:
        assert len(e["tokens"]) == len(tokenize(text))
        assert e["bias"] + sum(t["contribution"] for t in e["tokens"]) == pytest.approx(e["logit"], abs=1e-3)


@pytest.mark.parametrize("top_k", [1, 2, LIMITS.max_top_k])
def test_top_k_bounds_each_list(client, top_k):
    """At most ``top_k`` features per direction, the strongest ones."""
    text = "great wonderful superb loved film but awful boring dull hated plot"
    full = _predict(client, {"texts": [text], "explain": True, "top_k": LIMITS.max_top_k}).json()
    cut = _predict(client, {"texts": [text], "explain": True, "top_k": top_k}).json()
    full, cut = full["predictions"][0]["explanation"], cut["predictions"][0]["explanation"]
    assert 1 <= len(cut["positive"]) <= top_k and 1 <= len(cut["negative"]) <= top_k
    assert cut["positive"] == full["positive"][:top_k] and cut["negative"] == full["negative"][:top_k]
    assert cut["logit"] == full["logit"]


# -- the other routes ----------------------------------------------------------------------
def test_model_info_describes_the_served_model(model_dir, predictor):
    """GET /v1/model: family, training date, class names, vocabulary size, recorded metrics, limits."""
    info = TestClient(create_app(load_model(model_dir), LIMITS)).get("/v1/model")
    assert info.status_code == 200
    info = info.json()
    assert info["family"] == "nblinear"
    assert info["class_names"] == ["negative", "positive"]
    assert isinstance(info["vocabulary_size"], int) and info["vocabulary_size"] > 0
    assert info["metrics"] == METRICS
    created = datetime.fromisoformat(info["created"])
    assert created.tzinfo is not None and abs(time.time() - created.timestamp()) < 3600
    assert info["reviewsense_version"] == info["server_version"] == reviewsense.__version__
    assert isinstance(info["format_version"], int)
    assert info["limits"] == {"max_texts": LIMITS.max_texts, "max_chars": LIMITS.max_chars,
                              "max_body_bytes": LIMITS.max_body_bytes, "max_top_k": LIMITS.max_top_k}
    # a model that was never saved has no training record, but the same shape
    fresh = TestClient(create_app(predictor, LIMITS)).get("/v1/model").json()
    assert set(fresh) == set(info)
    assert fresh["metrics"] == {} and fresh["created"] is None and fresh["family"] == "nblinear"


def test_health_page_and_schema(client):
    """/health is ok, / is the HTML page with a text box, /openapi.json declares /v1/predict's body."""
    assert client.get("/health").json() == {"status": "ok"}
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<textarea" in page.text
    assert client.get("/docs").status_code == 200
    spec = client.get("/openapi.json").json()
    assert {"/v1/predict", "/v1/model", "/health"} <= set(spec["paths"])
    body = spec["paths"]["/v1/predict"]["post"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    assert schema["required"] == ["texts"] and schema["additionalProperties"] is False
    assert schema["properties"]["texts"]["type"] == "array"
    assert {"200", "413", "422"} <= set(spec["paths"]["/v1/predict"]["post"]["responses"])


# -- client errors -------------------------------------------------------------------------
@pytest.mark.parametrize("body", [b"", b"not json", b'{"texts": [', b'{"texts": ["a"]} trailing', b"\xff\xfe{}",
                                  b'{"texts": ["\\ud800"]}', b'{"texts": [NaN]}'])
def test_malformed_json_is_422_with_detail(client, body):
    """Bodies that are not one JSON document: 422 with a message, no traceback."""
    _assert_problem(client.post("/v1/predict", content=body, headers={"content-type": "application/json"}), 422)


@pytest.mark.parametrize("payload", [
    {"texts": "one text, not a list"},
    {"texts": ["ok", 5]},
    {"texts": [None]},
    {"texts": None},
    {"texts": ["ok"], "extra": 1},
    {"texts": ["ok"], "top_k": 0},
    {"texts": ["ok"], "top_k": -3},
    {"texts": ["ok"], "top_k": "many"},
    {"texts": ["ok"], "explain": [True]},
    {"explain": True},
    [],
    ["ok"],
    "ok",
    None,
])
def test_wrong_fields_or_types_are_422_with_where_and_what(client, payload):
    """Schema violations: 422 whose detail lists location, message and type of each error."""
    response = _predict(client, payload)
    _assert_problem(response, 422)
    for error in response.json()["detail"]:
        assert set(error) == {"loc", "msg", "type"} and error["loc"][0] == "body"


def test_top_k_over_the_limit_is_422(client):
    """top_k is bounded by the server's max_top_k."""
    assert _predict(client, {"texts": ["ok"], "explain": True, "top_k": LIMITS.max_top_k}).status_code == 200
    _assert_problem(_predict(client, {"texts": ["ok"], "top_k": LIMITS.max_top_k + 1}), 422)
    _assert_problem(_predict(client, {"texts": ["ok"], "top_k": 10**30}), 422)


def test_request_limits_are_422(client):
    """More texts than max_texts, or a text longer than max_chars: 422 with the numbers."""
    assert _predict(client, {"texts": ["ok"] * LIMITS.max_texts}).status_code == 200
    response = _predict(client, {"texts": ["ok"] * (LIMITS.max_texts + 1)})
    _assert_problem(response, 422)
    assert str(LIMITS.max_texts) in response.json()["detail"]
    assert _predict(client, {"texts": ["x" * LIMITS.max_chars]}).status_code == 200
    response = _predict(client, {"texts": ["ok", "x" * (LIMITS.max_chars + 1)]})
    _assert_problem(response, 422)
    assert "texts[1]" in response.json()["detail"]


def test_errors_do_not_echo_a_huge_input(client):
    """A 1 MB text over the limit, or in the wrong place, gets a short answer."""
    huge = "great " * 200_000
    for payload, status in [({"texts": [huge]}, 422), ({"texts": huge}, 422), ({"texts": ["ok", 7, huge]}, 422),
                            ({"texts": ["ok"], "explain": huge}, 422), ({"texts": ["ok"], "extra": huge}, 422)]:
        response = _predict(client, payload)
        _assert_problem(response, status)
        assert len(response.content) < 1_000, (status, len(response.content))


def test_errors_do_not_echo_a_huge_field_name(client):
    """An unknown field whose *name* is 1 MB long gets a short answer too."""
    response = client.post("/v1/predict", content=json.dumps({"texts": [], "k" * 1_000_000: 1}).encode())
    _assert_problem(response, 422)
    assert len(response.content) < 1_000, len(response.content)


def test_body_over_the_limit_is_413_with_or_without_content_length(client):
    """max_body_bytes holds for an honest Content-Length (rejected before reading) and for a
    chunked body with no length (counted as it arrives)."""
    body = json.dumps({"texts": ["great film " * 400] * 500}).encode()
    assert len(body) > LIMITS.max_body_bytes
    response = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    _assert_problem(response, 413)
    assert f"{LIMITS.max_body_bytes:,}" in response.json()["detail"]

    def chunks():
        for i in range(0, len(body), 64 * 1024):
            yield body[i:i + 64 * 1024]

    response = client.post("/v1/predict", content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in response.request.headers
    _assert_problem(response, 413)
    # a chunked body under the limit is read whole
    small = json.dumps({"texts": ["great film"]}).encode()
    response = client.post("/v1/predict", content=iter([small[:5], small[5:]]))
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1


def test_invalid_content_length_is_400(client):
    """A Content-Length that is not a number is refused before anything is read."""
    _assert_problem(client.post("/v1/predict", content=b"{}", headers={"content-length": "abc"}), 400)


def test_unknown_routes_and_methods_are_4xx(client):
    """No route, or the wrong method: 404 / 405 with a detail."""
    _assert_problem(client.get("/nope"), 404)
    _assert_problem(client.get("/v1/predict"), 405)
    _assert_problem(client.delete("/v1/model"), 405)


# -- compressed bodies ---------------------------------------------------------------------
def _gzip(data: bytes, members: int = 1) -> bytes:
    import gzip

    cut = len(data) // members
    return b"".join(gzip.compress(data[i * cut:(i + 1) * cut if i < members - 1 else None]) for i in range(members))


@pytest.mark.parametrize("encoding", ["gzip", "x-gzip", "GZip", "deflate", "identity", "gzip-2-members"])
def test_gzip_and_deflate_bodies_are_decompressed(client, encoding):
    """``Content-Encoding: gzip`` (several members too) or ``deflate`` (zlib): the body is
    decompressed and answered like the same body sent plain."""
    import zlib

    body = json.dumps({"texts": TEXTS, "explain": True}).encode()
    content = {"deflate": zlib.compress(body), "identity": body,
               "gzip-2-members": _gzip(body, members=2)}.get(encoding) or _gzip(body)
    name = "gzip" if encoding == "gzip-2-members" else encoding
    response = client.post("/v1/predict", content=content, headers={"content-type": "application/json",
                                                                     "content-encoding": name})
    assert response.status_code == 200, response.text[:300]
    assert response.json() == _predict(client, {"texts": TEXTS, "explain": True}).json()


def test_compressed_bodies_are_limited_after_decompression(client):
    """A zip bomb (100 MB of JSON in ~100 kB of gzip, under the body limit) gets 413 as soon as
    the decompressed size passes the limit, declared or chunked; a compressed body that
    inflates to just under the limit is accepted."""
    import zlib

    squeeze = zlib.compressobj(9, zlib.DEFLATED, 31)
    bomb = squeeze.compress(b'{"texts": ["great film"]' + b" " * 100)
    for _ in range(100):
        bomb += squeeze.compress(b" " * 1024 * 1024)
    bomb += squeeze.compress(b"}") + squeeze.flush()
    assert len(bomb) < LIMITS.max_body_bytes // 10
    headers = {"content-type": "application/json", "content-encoding": "gzip"}
    for content in (bomb, iter([bomb[i:i + 8192] for i in range(0, len(bomb), 8192)])):
        started = time.monotonic()
        response = client.post("/v1/predict", content=content, headers=headers)
        _assert_problem(response, 413)
        assert "decompressed" in response.json()["detail"] and time.monotonic() - started < 2.0
    payload = json.dumps({"texts": ["great film"]}).encode()
    fits = payload[:-1] + b" " * (LIMITS.max_body_bytes - len(payload)) + b"}"
    assert len(fits) == LIMITS.max_body_bytes
    assert client.post("/v1/predict", content=_gzip(fits), headers=headers).status_code == 200
    _assert_problem(client.post("/v1/predict", content=_gzip(fits + b" "), headers=headers), 413)


@pytest.mark.parametrize("encoding", ["br", "compress", "zstd", "gzip, br", "x" * 5_000])
def test_unknown_content_encodings_are_415(client, encoding):
    """An encoding the server does not decode: 415 naming the ones it does, before the body."""
    response = client.post("/v1/predict", content=b'{"texts": ["great"]}', headers={"content-encoding": encoding})
    _assert_problem(response, 415)
    assert "gzip, deflate or identity" in response.json()["detail"] and len(response.content) < 300


@pytest.mark.parametrize("content", [b'{"texts": ["great"]}', b"\x1f\x8b garbage", b"", "truncated", "trailing"])
def test_gzip_bodies_that_do_not_decompress_are_400(client, content):
    """Not gzip, cut short, or followed by garbage: 400 with a message."""
    body = _gzip(b'{"texts": ["great film"]}')
    content = {"truncated": body[:-6], "trailing": body + b"garbage"}.get(content, content)
    response = client.post("/v1/predict", content=content, headers={"content-encoding": "gzip"})
    _assert_problem(response, 400)
    assert "gzip" in response.json()["detail"] or "truncated" in response.json()["detail"]


# -- per-request threshold -------------------------------------------------------------------
def test_threshold_sets_where_the_label_turns(client, predictor):
    """``threshold`` (default 0.5): label = probability >= threshold; probabilities do not change."""
    texts = ["great wonderful film", "a film", "awful boring film", "great film but a dull plot"]
    probabilities = [float(p) for p in predictor.positive_proba(texts)]
    default = _predict(client, {"texts": texts}).json()["predictions"]
    assert default == _predict(client, {"texts": texts, "threshold": 0.5}).json()["predictions"]
    for threshold in (0, 1, 0.0, 1.0, *sorted(probabilities), 0.25, 0.75, 0.999):
        rows = _predict(client, {"texts": texts, "threshold": threshold}).json()["predictions"]
        assert [r["probability"] for r in rows] == [r["probability"] for r in default]
        assert [r["label"] for r in rows] == [int(p >= threshold) for p in probabilities], threshold
        assert [r["label_name"] for r in rows] == [predictor.class_names[r["label"]] for r in rows]
    assert {r["label"] for r in _predict(client, {"texts": texts, "threshold": 0}).json()["predictions"]} == {1}
    assert {r["label"] for r in _predict(client, {"texts": texts, "threshold": 1}).json()["predictions"]} == {0}


@pytest.mark.parametrize("threshold", [b"-0.001", b"1.0001", b"2", b"-1", b"NaN", b"Infinity", b"-Infinity",
                                       b"1e400", b'"0.5"', b"null", b"true", b"[0.5]"])
def test_threshold_out_of_range_or_not_a_number_is_422(client, threshold):
    """Outside [0, 1], NaN, infinite, or not a JSON number: 422 naming the field."""
    response = client.post("/v1/predict", content=b'{"texts": ["great"], "threshold": ' + threshold + b"}",
                           headers={"content-type": "application/json"})
    _assert_problem(response, 422)
    errors = [error for error in response.json()["detail"] if error["loc"] == ["body", "threshold"]]
    assert errors and all(error["type"] != "extra_forbidden" for error in errors)  # a known field, a wrong value


def test_threshold_is_in_the_schema(client):
    schema = client.get("/openapi.json").json()["paths"]["/v1/predict"]["post"]
    threshold = schema["requestBody"]["content"]["application/json"]["schema"]["properties"]["threshold"]
    assert threshold["type"] == "number" and threshold["minimum"] == 0 and threshold["maximum"] == 1
    assert threshold["default"] == 0.5
    assert {"400", "413", "415", "422"} <= set(schema["responses"])


# -- the API key ---------------------------------------------------------------------------
ROUTES = [("POST", "/"), ("GET", "/docs"), ("GET", "/openapi.json"), ("GET", "/v1/model"), ("GET", "/v1/predict"),
          ("POST", "/v1/predict"), ("GET", "/nope"), ("GET", "/health/extra")]
WRONG = [None, "Bearer wrong", f"Bearer {KEY}x", f"Bearer {KEY[:-1]}", KEY, f"Basic {KEY}", f"Bearer{KEY}", ""]


@pytest.mark.parametrize(("method", "path"), ROUTES)
@pytest.mark.parametrize("authorization", WRONG)
def test_api_key_guards_every_route_but_health(keyed, method, path, authorization):
    """Without the right 'Authorization: Bearer <key>', every route answers 401 (with
    WWW-Authenticate: Bearer) before anything else happens; only the page itself (GET /) is
    open (``test_the_page_needs_no_key_but_the_api_and_docs_do``)."""
    headers = {} if authorization is None else {"authorization": authorization}
    response = keyed.request(method, path, headers=headers, json={"texts": ["great"]})
    _assert_problem(response, 401)
    assert response.headers["www-authenticate"] == "Bearer"
    assert KEY not in response.text


GET_ROUTES = ["/", "/health", "/v1/model", "/openapi.json", "/docs"]


@pytest.mark.parametrize("path", GET_ROUTES)
def test_head_on_get_routes_is_answered_like_get_without_a_body(client, path):
    """Monitors and link checkers use HEAD: the status and headers of GET, no body (before: 405)."""
    got, head = client.get(path), client.head(path)
    assert got.status_code == head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == got.headers["content-length"] == str(len(got.content))


def test_head_on_a_post_route_is_still_405(client):
    response = client.head("/v1/predict")
    assert response.status_code == 405 and response.content == b""
    assert response.headers["allow"] == "POST"


@pytest.mark.parametrize("authorization", WRONG)
def test_head_needs_the_api_key_where_get_does(keyed, authorization):
    """HEAD gets GET's treatment from the gateway: ``/`` and ``/health`` open, the rest 401
    without the right key (no body either way), 200 with it."""
    headers = {} if authorization is None else {"authorization": authorization}
    for path in GET_ROUTES:
        response = keyed.head(path, headers=headers)
        assert response.status_code == (200 if path in ("/", "/health") else 401), path
        assert response.content == b""
        if response.status_code == 401:
            assert response.headers["www-authenticate"] == "Bearer"
        right = keyed.head(path, headers={"authorization": f"Bearer {KEY}"})
        assert right.status_code == 200 and right.content == b"", path


def test_api_key_is_checked_before_the_body(keyed):
    """A caller without the key learns nothing about limits or the body's validity."""
    for content in (b"not json", b"x" * (LIMITS.max_body_bytes + 1)):
        _assert_problem(keyed.post("/v1/predict", content=content), 401)


@pytest.mark.parametrize("authorization", WRONG)
def test_the_page_needs_no_key_but_the_api_and_docs_do(keyed, authorization):
    """GET / is the static page (no data, no secret): served with or without a key, right or
    wrong, and it carries the key field; what the page calls, the docs and the schema stay 401."""
    headers = {} if authorization is None else {"authorization": authorization}
    page = keyed.get("/", headers=headers)
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "<textarea" in page.text and 'id="api-key"' in page.text and 'type="password"' in page.text
    assert KEY not in page.text
    for method, path in [("GET", "/v1/model"), ("POST", "/v1/predict"), ("GET", "/docs"), ("GET", "/openapi.json")]:
        response = keyed.request(method, path, headers=headers, json={"texts": ["great"]})
        _assert_problem(response, 401)
        assert response.headers["www-authenticate"] == "Bearer"
    for method in ("POST", "PUT", "DELETE"):  # only GET opens the page's path
        _assert_problem(keyed.request(method, "/", headers=headers), 401)


def test_right_key_opens_every_route_and_health_needs_none(keyed):
    """/health needs no key; with the right key every route behaves as without a key."""
    assert keyed.get("/health").json() == {"status": "ok"}
    assert keyed.get("/health", headers={"authorization": "Bearer wrong"}).status_code == 200
    auth = {"authorization": f"Bearer {KEY}"}
    expected = {"/": 200, "/docs": 200, "/openapi.json": 200, "/v1/model": 200, "/nope": 404, "/health/extra": 404}
    for path, status in expected.items():
        assert keyed.get(path, headers=auth).status_code == status, path
    assert keyed.get("/v1/predict", headers=auth).status_code == 405
    response = keyed.post("/v1/predict", headers=auth, json={"texts": ["great film", "awful film"]})
    assert response.status_code == 200
    assert [p["label"] for p in response.json()["predictions"]] == [1, 0]
    _assert_problem(keyed.post("/v1/predict", headers=auth, json={"texts": 1}), 422)
    # the scheme is case-insensitive and may be followed by several spaces (RFC 9110, 11.4)
    for header in (f"bearer {KEY}", f"BEARER {KEY}", f"Bearer  {KEY}"):
        assert keyed.get("/v1/model", headers={"authorization": header}).status_code == 200, header


# -- a real server -------------------------------------------------------------------------
LIVE_LIMITS = Limits(max_texts=8, max_chars=5_000, max_body_bytes=64 * 1024, body_timeout=1.0)


@pytest.fixture(scope="module")
def live(predictor):
    """The app under uvicorn in a background thread, on a free loopback port: its base URL."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    config = uvicorn.Config(create_app(predictor, LIVE_LIMITS), host="127.0.0.1", port=port, log_level="warning",
                            timeout_keep_alive=1)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    base = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 20
    while True:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        try:
            if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                break
        except httpx.TransportError:
            time.sleep(0.05)
    yield base
    server.should_exit = True
    thread.join(10)
    sock.close()
    assert not thread.is_alive()


def _raw(base: str, head: bytes, body: bytes = b"") -> socket.socket:
    """A raw connection that has sent ``head`` (request line and headers) and ``body``."""
    host, port = base.removeprefix("http://").split(":")
    conn = socket.create_connection((host, int(port)), timeout=10)
    conn.sendall(head + b"\r\n\r\n" + body)
    return conn


def _read_response(conn: socket.socket) -> tuple[int, bytes]:
    """Status and body of one HTTP/1.1 response with a Content-Length."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        assert chunk, f"connection closed after {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(":", 1) for line in lines[1:])
    length = int(headers["content-length"])
    while len(body) < length:
        body += conn.recv(65536)
    return int(lines[0].split()[1]), body


def _post_head(length: int | None) -> bytes:
    framing = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n{framing}".encode()


def test_stalled_bodies_get_408_while_other_clients_are_served(live):
    """Clients that send part of a body and stall get 408 after body_timeout (then the server
    closes their connections); meanwhile other requests are answered at once."""
    started = time.monotonic()
    slow = [_raw(live, _post_head(100), b'{"texts": ') for _ in range(5)]  # 10 of 100 bytes
    slow.append(_raw(live, _post_head(None), b'5\r\n{"tex\r\n'))  # chunked, never finished
    with httpx.Client(base_url=live, timeout=5) as http:
        for i in range(10):
            t = time.monotonic()
            response = http.post("/v1/predict", json={"texts": [f"great film number {i}", "awful plot"]})
            assert response.status_code == 200 and len(response.json()["predictions"]) == 2
            assert time.monotonic() - t < 1.0
        assert http.get("/v1/model").status_code == 200
    assert select.select(slow, [], [], 0)[0] == [], "a stalled client was answered before its timeout"
    assert time.monotonic() - started < LIVE_LIMITS.body_timeout
    for conn in slow:
        status, body = _read_response(conn)
        assert status == 408 and b"not received within" in body
    elapsed = time.monotonic() - started
    assert LIVE_LIMITS.body_timeout * 0.9 <= elapsed < LIVE_LIMITS.body_timeout + 2.0
    for conn in slow:  # the connection is not held open by the server (keep-alive timeout: 1 s)
        conn.settimeout(5)
        assert conn.recv(1) == b""
        conn.close()


def test_real_server_enforces_the_body_limit_early(live):
    """Over max_body_bytes: an honest Content-Length is refused at once, without the body;
    a chunked body as soon as it passes the limit."""
    conn = _raw(live, _post_head(10_000_000))
    t = time.monotonic()
    status, body = _read_response(conn)
    assert status == 413 and time.monotonic() - t < 0.5
    conn.close()
    chunk = b"x" * 16_384
    conn = _raw(live, _post_head(None), b"".join(b"%x\r\n%s\r\n" % (len(chunk), chunk) for _ in range(5)))
    status, body = _read_response(conn)
    assert status == 413 and b"65,536" in body
    conn.close()


def test_real_server_answers_head_without_a_body(live):
    """Through uvicorn: HEAD /health is 200 with GET's Content-Length and no body, and the
    connection stays usable for the next request."""
    conn = _raw(live, b"HEAD /health HTTP/1.1\r\nHost: x\r\n\r\nGET /health HTTP/1.1\r\nHost: x")
    conn.settimeout(5)
    data = b""
    while data.count(b"HTTP/1.1 ") < 2 or not data.endswith(b"}"):
        chunk = conn.recv(65536)
        assert chunk, data
        data += chunk
    conn.close()
    head, get = data.split(b"HTTP/1.1 ")[1:]
    assert head.startswith(b"200 ") and head.endswith(b"\r\n\r\n")  # headers only
    assert get.startswith(b"200 ") and get.endswith(b'{"status": "ok"}')
    assert b"content-length: 16" in head.lower()


# -- reviewsense serve ---------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _serve(args: list[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen:
    with open(log, "wb") as out:
        return subprocess.Popen([sys.executable, "-m", "reviewsense.cli", "serve", *args], stdout=out,
                                stderr=subprocess.STDOUT, env={**os.environ, **(env or {})}, start_new_session=True)


def _wait_healthy(proc: subprocess.Popen, base: str, log: Path, seconds: float = 60) -> None:
    """Until the server says it serves: every worker has loaded the model and /health answers
    (with several workers, /health answers as soon as one of them is up: on a busy machine the
    others may still be loading)."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"server exited with {proc.returncode}: {log.read_text()}"
        if "serving the " in log.read_text():
            assert httpx.get(f"{base}/health", timeout=5).status_code == 200
            return
        time.sleep(0.1)
    raise AssertionError(f"server not up after {seconds} s: {log.read_text()}")


def _stop(proc: subprocess.Popen) -> int:
    """Ctrl+C (SIGINT) to the server; its exit status once it and its workers are gone."""
    proc.send_signal(signal.SIGINT)
    try:
        code = proc.wait(20)
        deadline = time.monotonic() + 10
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        return code
    finally:
        if group_alive(proc.pid):  # its own session: whatever of the server and its workers is left
            os.killpg(proc.pid, signal.SIGKILL)
            raise AssertionError("server processes outlived the server")


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serve_answers_and_stops_cleanly(model_dir, tmp_path, workers):
    """``reviewsense serve --model DIR --port P [--workers 2]`` serves /health and /v1/predict
    (the API key from $REVIEWSENSE_API_KEY reaches every worker); Ctrl+C stops it and its
    workers, exit status 0."""
    port, log = _free_port(), tmp_path / "serve.log"
    proc = _serve(["--model", str(model_dir), "--port", str(port), "--workers", str(workers)], log,
                  env={"REVIEWSENSE_API_KEY": KEY} if workers > 1 else None)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, base, log)
        auth = {"authorization": f"Bearer {KEY}"} if workers > 1 else {}
        with httpx.Client(base_url=base, timeout=10, headers=auth) as http:
            for _ in range(2 * workers):
                response = http.post("/v1/predict", json={"texts": ["a great film", "an awful film"]})
                assert response.status_code == 200
                assert [p["label_name"] for p in response.json()["predictions"]] == ["positive", "negative"]
            assert http.get("/v1/model").json()["metrics"] == METRICS
        if workers > 1:
            assert httpx.get(f"{base}/v1/model", timeout=10).status_code == 401
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()
    assert f"serving the nblinear model from {model_dir}" in log.read_text()


@pytest.mark.parametrize("workers", [1, 2])
def test_cli_serve_closes_stalled_connections_in_every_worker(model_dir, tmp_path, workers):
    """``reviewsense serve --header-timeout 1 --max-connections 20 [--workers 2]``: in every
    worker process, connections that send nothing or half a request's headers are closed after
    a second (408 for the half-sent), at most 20 per process stay open, and real clients are
    served meanwhile."""
    import selectors

    port, log = _free_port(), tmp_path / "serve.log"
    proc = _serve(["--model", str(model_dir), "--port", str(port), "--workers", str(workers),
                   "--header-timeout", "1", "--max-connections", "20"], log)
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_healthy(proc, base, log)
        time.sleep(1.5)  # the health checks' own connections are gone
        started = time.monotonic()
        idle = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(60)]
        with httpx.Client(base_url=base, timeout=5) as http:
            response = http.post("/v1/predict", json={"texts": ["a great film"]})
            assert response.status_code == 200 and time.monotonic() - started < 1.0
        time.sleep(0.3)
        with selectors.DefaultSelector() as selector:
            for conn in idle:
                selector.register(conn, selectors.EVENT_READ)
            evicted = len(selector.select(0))
        assert 60 - evicted <= 20 * workers  # the cap, per process
        half = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(8)]
        for conn in half:
            conn.sendall(_post_head(10))  # the headers, without the blank line that ends them
        pending, answers = set(idle + half), {}
        while pending and time.monotonic() - started < 4.0:
            with selectors.DefaultSelector() as selector:
                for conn in pending:
                    selector.register(conn, selectors.EVENT_READ)
                for key, _ in selector.select(0.2):
                    conn = key.fileobj
                    pending.discard(conn)
                    answers[conn] = b"".join(iter(lambda c=conn: c.recv(65536), b""))
        assert not pending, f"{len(pending)} stalled connections still open"
        assert all(answers[conn] == b"" for conn in idle)
        assert all(answers[conn].startswith(b"HTTP/1.1 408 ") for conn in half)
        for conn in idle + half:
            conn.close()
    finally:
        code = _stop(proc)
    assert code == 0, log.read_text()


@pytest.mark.parametrize("case", ["missing", "empty", "tampered"])
def test_cli_serve_refuses_a_bad_model_folder(model_dir, tmp_path, case):
    """A folder that is not a sound export: exit 2 and one 'reviewsense: error:' line, no server."""
    folder = tmp_path / "model"
    if case != "missing":
        folder.mkdir()
    if case == "tampered":
        for source in model_dir.iterdir():
            (folder / source.name).write_bytes(source.read_bytes())
        weights = next(folder.glob("*.safetensors"))
        data = bytearray(weights.read_bytes())
        data[-1] ^= 0xFF
        weights.write_bytes(bytes(data))
    result = subprocess.run([sys.executable, "-m", "reviewsense.cli", "serve", "--model", str(folder), "--port",
                             str(_free_port())], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("reviewsense: error:"), result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""


# -- explanations: only where the model has them, and bounded ----------------------------------
def test_a_model_without_explanations_says_so_with_422(predictor):
    """A family without explanations (e.g. sentence-transformers): /v1/model says
    ``explain: false`` and ``explain: true`` is a 422 with a message, never a 500."""
    from reviewsense.models.base import Predictor

    class Opaque(type(predictor)):
        family = "opaque"
        _attribute = Predictor._attribute

    opaque = Opaque(predictor.vectorizer, predictor.config, predictor.weights)
    client = TestClient(create_app(opaque, LIMITS))
    assert client.get("/v1/model").json()["explain"] is False
    assert TestClient(create_app(predictor, LIMITS)).get("/v1/model").json()["explain"] is True
    response = _predict(client, {"texts": ["great film"], "explain": True})
    _assert_problem(response, 422)
    assert "not available for 'opaque'" in response.json()["detail"]
    assert _predict(client, {"texts": ["great film"]}).status_code == 200


def test_explained_requests_are_bounded_in_total_size(client):
    """Explanations list every word, so explained texts share one max_chars budget."""
    half = "great film " * (LIMITS.max_chars // 22)
    assert _predict(client, {"texts": [half, half], "explain": True}).status_code == 200
    response = _predict(client, {"texts": [half, half, half], "explain": True})
    _assert_problem(response, 422)
    assert "with explain" in response.json()["detail"]
    assert _predict(client, {"texts": [half, half, half]}).status_code == 200


@pytest.mark.parametrize("option, env", [("", None), ("  ", None), (None, ""), (None, " \t")],
                         ids=["option-empty", "option-blank", "env-empty", "env-blank"])
def test_cli_serve_refuses_an_empty_api_key(model_dir, monkeypatch, capsys, option, env):
    """``--api-key ''`` (``"$KEY"`` unset) or an empty ``REVIEWSENSE_API_KEY``: one line, exit 2,
    no server (before: served with no authentication and no word)."""
    from reviewsense.cli import main

    monkeypatch.setattr(uvicorn, "run", lambda *a, **k: pytest.fail("started a server"))
    if env is None:
        monkeypatch.delenv("REVIEWSENSE_API_KEY", raising=False)
    else:
        monkeypatch.setenv("REVIEWSENSE_API_KEY", env)
    key = [] if option is None else ["--api-key", option]
    assert main(["serve", "--model", str(model_dir), "--port", str(_free_port()), *key]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    name = "--api-key" if option is not None else "REVIEWSENSE_API_KEY"
    assert len(err) == 1 and err[0].startswith("reviewsense: error:") and name in err[0] and "empty" in err[0], err


@pytest.mark.parametrize("key", ["", " "])
def test_create_app_refuses_an_empty_api_key(predictor, key):
    with pytest.raises(ValueError, match="api_key is empty"):
        create_app(predictor, LIMITS, api_key=key)


def test_port_out_of_range_is_refused(capsys):
    from reviewsense.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["serve", "--model", "m", "--port", "70000"])
    assert exit_info.value.code == 2
    assert "must be from 1 to 65535, got 70000" in capsys.readouterr().err


def test_the_app_warms_its_model_up_before_the_first_request(toy_dataset, tmp_path):
    from reviewsense.models import nblinear
    from reviewsense.serving.app import create_app

    train, validation = toy_dataset(200, seed=1), toy_dataset(100, seed=2)
    fitted, _ = nblinear.fit(train, validation, nblinear.NBLinearParams(hash_bits=10, binary=True))
    save_model(fitted, tmp_path / "model")
    predictor = load_model(tmp_path / "model")
    vectorizer = predictor.vectorizer
    vectorizer._index = vectorizer._ascii = None  # as built lazily (loading's probe of finite scores builds them)
    create_app(predictor)
    assert vectorizer._index is not None  # the small-batch dict, for texts beyond ASCII
    if importlib.util.find_spec("numba"):
        assert vectorizer._ascii  # the compiled lookup of ASCII texts
