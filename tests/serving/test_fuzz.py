"""Fuzzing the HTTP service: schemathesis requests generated from its OpenAPI schema, and
arbitrary JSON values and bytes posted to /v1/predict. No request may get a 5xx.

Every request the apps receive is counted (``CENSUS``); each fuzz test checks the requests it
sent itself (at least ``MIN_REQUESTS`` of them, none answered 5xx) and prints its figures
(``python -m pytest tests/serving/test_fuzz.py -rP`` shows them), whatever the order the tests
run in and whichever of them run.
"""

from __future__ import annotations

import json
from collections import Counter

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("fastapi")
pytest.importorskip("httpx")
schemathesis = pytest.importorskip("schemathesis")

from fastapi.testclient import TestClient  # noqa: E402
from schemathesis import checks  # noqa: E402

from reviewsense.serving.app import Limits, create_app  # noqa: E402

LIMITS = Limits(max_texts=20, max_chars=500, max_body_bytes=64 * 1024, max_top_k=20)
KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
# the fewest requests each fuzz test must send (a fuzzer that quietly generates little fails)
MIN_REQUESTS = {"test_schemathesis_no_key": 600, "test_schemathesis_with_api_key": 300,
                "test_any_body_gets_200_413_or_422": 300}

CENSUS: Counter = Counter()  # response statuses of every request the apps got (500 also counts an exception)


class Census:
    """ASGI wrapper that records the status of every HTTP response the app sends."""

    def __init__(self, app):
        self.app, self.statuses = app, CENSUS

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)

        async def recording_send(message):
            if message["type"] == "http.response.start":
                self.statuses[message["status"]] += 1
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except Exception:
            self.statuses[500] += 1
            raise


@pytest.fixture(autouse=True)
def census(request):
    """The requests this test sent: at least its ``MIN_REQUESTS``, none answered 5xx; printed."""
    before = Counter(CENSUS)
    yield
    sent = CENSUS - before
    total, server_errors = sum(sent.values()), sum(n for status, n in sent.items() if status >= 500)
    print(f"{request.node.name}: {total} requests, {server_errors} with 5xx; by status: {dict(sorted(sent.items()))}")
    assert total >= MIN_REQUESTS[request.node.originalname], f"only {total} requests were sent"
    assert server_errors == 0


# -- schemathesis --------------------------------------------------------------------------
def _schema(predictor, api_key=None):
    app = create_app(predictor, LIMITS, api_key=api_key)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, headers=AUTH if api_key else {})
    schema.app = Census(app)  # count the fuzzing requests, not the schema download
    return schema


@pytest.fixture(scope="module")
def open_schema(predictor):
    return _schema(predictor)


@pytest.fixture(scope="module")
def keyed_schema(predictor):
    return _schema(predictor, api_key=KEY)


# What the responses are checked for: no 5xx, documented status codes and content types,
# responses that match the schema, schema-invalid requests rejected and schema-valid ones
# (within the limits the schema states) accepted.
CHECKS = [checks.not_a_server_error, checks.status_code_conformance, checks.content_type_conformance,
          checks.response_schema_conformance, checks.negative_data_rejection, checks.positive_data_acceptance]
FUZZ = settings(deadline=None, suppress_health_check=list(HealthCheck))

open_api = schemathesis.pytest.from_fixture("open_schema")
keyed_api = schemathesis.pytest.from_fixture("keyed_schema")


@open_api.parametrize()
@settings(FUZZ, max_examples=800)
def test_schemathesis_no_key(case):
    """Generated requests (valid and invalid, every operation) never get a 5xx, and the
    answers match the schema: documented status codes, content types and bodies."""
    response = case.call()
    assert response.status_code < 500, response.text[:500]
    case.validate_response(response, checks=CHECKS)


@keyed_api.parametrize()
@settings(FUZZ, max_examples=250)
def test_schemathesis_with_api_key(case):
    """With an API key: the same with the key; without it, 401 whatever the request
    (/health excepted)."""
    response = case.call(headers=AUTH)
    assert response.status_code < 500, response.text[:500]
    case.validate_response(response, checks=CHECKS)
    anonymous = case.call()
    expected = response.status_code if case.path == "/health" else 401
    assert anonymous.status_code == expected, anonymous.text[:500]


# -- hypothesis: any JSON, any bytes -------------------------------------------------------
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=50),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=10), children, max_size=5),
    max_leaves=20,
)
WORDS = st.sampled_from(["great film", "awful plot", "", "<br />&amp;", "Loved it!", "dull, DULL, dull"])
VALID = st.fixed_dictionaries(
    {"texts": st.lists(st.text(max_size=200) | WORDS, max_size=LIMITS.max_texts)},
    optional={"explain": st.booleans(), "top_k": st.integers(1, LIMITS.max_top_k),
              "threshold": st.floats(0, 1) | st.sampled_from([0, 1])},
)
NEAR_VALID = st.fixed_dictionaries(
    {"texts": st.lists(st.text(max_size=LIMITS.max_chars + 20) | WORDS, max_size=LIMITS.max_texts + 2)
     | st.lists(WORDS | JSON, max_size=4) | JSON},
    optional={"explain": st.booleans() | JSON, "top_k": st.integers(-2, LIMITS.max_top_k + 2) | JSON,
              "threshold": st.floats(-0.5, 1.5) | st.floats() | JSON, "extra": JSON},
)
BODIES = st.one_of(
    VALID.map(json.dumps),
    VALID.map(lambda v: json.dumps(v, ensure_ascii=False).encode("utf-8", "surrogatepass")),  # lone surrogates too
    NEAR_VALID.map(json.dumps),
    JSON.map(json.dumps),  # NaN and Infinity come out as bare words: not JSON
    st.binary(max_size=2_000),
    st.builds(lambda v, pad: json.dumps(v) + " " * pad, VALID, st.integers(0, 2 * LIMITS.max_body_bytes)),
)


@pytest.fixture(scope="module")
def fuzz_clients(predictor):
    return {False: TestClient(Census(create_app(predictor, LIMITS))),
            True: TestClient(Census(create_app(predictor, LIMITS, api_key=KEY)))}


def _encode(body: str | bytes, encoding: str | None) -> bytes:
    import gzip
    import zlib

    data = body.encode() if isinstance(body, str) else body
    return {None: data, "gzip": gzip.compress(data) if encoding == "gzip" else b"",
            "deflate": zlib.compress(data) if encoding == "deflate" else b""}[encoding]


@pytest.mark.parametrize("keyed", [False, True], ids=["no-key", "api-key"])
@settings(deadline=None, max_examples=300, suppress_health_check=[HealthCheck.too_slow,
                                                                  HealthCheck.function_scoped_fixture])
@given(body=BODIES, encoding=st.sampled_from([None, None, "gzip", "deflate"]))
def test_any_body_gets_200_413_or_422(fuzz_clients, keyed, body, encoding):
    """Whatever the body, sent plain or gzip/deflate-compressed: 200 with one well-formed
    prediction per text (label = probability >= threshold), or 413/422 with a detail; never a
    5xx. With an API key and no header: 401."""
    client = fuzz_clients[keyed]
    headers = {**(AUTH if keyed else {}), **({"content-encoding": encoding} if encoding else {})}
    response = client.post("/v1/predict", content=_encode(body, encoding), headers=headers)
    assert response.status_code in (200, 413, 422), (response.status_code, response.text[:500])
    payload = response.json()
    if response.status_code == 200:
        request = json.loads(body)
        texts, threshold = request["texts"], request.get("threshold", 0.5)
        assert len(payload["predictions"]) == len(texts)
        for row in payload["predictions"]:
            assert 0.0 <= row["probability"] <= 1.0
            assert row["label"] in (0, 1) and row["label_name"] == ("negative", "positive")[row["label"]]
            if abs(row["probability"] - threshold) > 1e-6:  # probabilities are rounded to 6 decimals
                assert row["label"] == int(row["probability"] >= threshold)
    else:
        assert payload["detail"]
    if keyed:
        assert client.post("/v1/predict", content=_encode(body, encoding),
                           headers={"content-encoding": encoding} if encoding else {}).status_code == 401


