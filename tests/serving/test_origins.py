"""Browsers and the API (issue: hardening, item 16): JSON bodies only (415), no other web
page's ``Origin`` (403), a loopback ``Host`` on a loopback server (400, DNS rebinding), and
CORS only for the origins given."""

from __future__ import annotations

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from reviewsense.cli import main  # noqa: E402
from reviewsense.serving.app import create_app  # noqa: E402
from reviewsense.serving.origins import content_type_problem, is_loopback, parse_origins  # noqa: E402

BODY = b'{"texts": ["a great film"]}'


@pytest.fixture(scope="module")
def client(predictor):
    return TestClient(create_app(predictor))


@pytest.fixture(scope="module")
def local(predictor):
    """As ``reviewsense serve`` runs on 127.0.0.1 (its default)."""
    return TestClient(create_app(predictor, loopback=True), base_url="http://127.0.0.1:8000")


def _problem(response, status: int) -> str:
    assert response.status_code == status, response.text[:300]
    assert response.headers["content-type"].startswith("application/json")
    return response.json()["detail"]


# -- Content-Type -------------------------------------------------------------------------
@pytest.mark.parametrize("content_type", ["text/plain", "text/plain;charset=UTF-8", "multipart/form-data; boundary=x",
                                          "application/x-www-form-urlencoded", "application/xml", "",
                                          "application/json; charset=latin-1"])
def test_a_body_that_is_not_json_is_415(client, content_type):
    """What a web page can send without a CORS preflight (text/plain, a form) is refused
    before the body is read, with what to send instead; so is a non-UTF-8 charset."""
    detail = _problem(client.post("/v1/predict", content=BODY, headers={"content-type": content_type}), 415)
    assert "application/json" in detail or "UTF-8" in detail
    if content_type == "application/x-www-form-urlencoded":  # what curl -d sends
        assert "-H 'Content-Type: application/json'" in detail


@pytest.mark.parametrize("content_type", ["application/json", "application/json; charset=utf-8",
                                          "Application/JSON;charset=\"UTF-8\"", "application/vnd.api+json", None])
def test_json_bodies_and_bodies_without_a_type_are_scored(client, content_type):
    """application/json (any case, UTF-8 charset), application/*+json, and no Content-Type at
    all (httpx ``content=``, urllib: not a browser's, whose cross-origin requests carry Origin)."""
    headers = {} if content_type is None else {"content-type": content_type}
    response = client.post("/v1/predict", content=BODY, headers=headers)
    assert response.status_code == 200, response.text
    assert len(response.json()["predictions"]) == 1


def test_the_web_page_posts_json():
    from importlib import resources

    page = resources.files("reviewsense.serving").joinpath("static/index.html").read_text(encoding="utf-8")
    assert 'headers: { "content-type": "application/json" }' in page


# -- Origin -------------------------------------------------------------------------------
@pytest.mark.parametrize("origin", ["http://evil.example", "https://testserver.evil.example", "null",
                                    "http://testserver:8080", "not an origin"])
@pytest.mark.parametrize("method, path", [("POST", "/v1/predict"), ("GET", "/v1/model"), ("GET", "/health")])
def test_requests_from_another_web_page_are_403(client, origin, method, path):
    """A browser says which page sent a request (Origin): another site's page gets 403 on every
    route, whatever the body (here a valid JSON one), and no CORS header."""
    response = client.request(method, path, headers={"origin": origin, "content-type": "application/json"},
                              content=BODY if method == "POST" else None)
    assert "web page" in _problem(response, 403)
    assert "access-control-allow-origin" not in response.headers


@pytest.mark.parametrize("origin", ["http://testserver", "https://testserver", "http://TestServer:80"])
def test_the_servers_own_page_and_clients_without_origin_pass(client, origin):
    """The page served by the app (same origin: Origin is the Host it was sent to) and curl /
    scripts (no Origin) are served."""
    assert client.post("/v1/predict", content=BODY, headers={"origin": origin,
                                                             "content-type": "application/json"}).status_code == 200
    assert client.get("/v1/model").status_code == 200


# -- Host on a loopback server --------------------------------------------------------------
@pytest.mark.parametrize("host", ["127.0.0.1:8000", "localhost:8000", "localhost", "[::1]:8000", "127.0.0.2",
                                  "app.localhost:8000"])
def test_a_loopback_server_answers_loopback_hosts(local, host):
    assert local.get("/health", headers={"host": host}).status_code == 200
    assert local.post("/v1/predict", content=BODY, headers={"host": host}).status_code == 200


@pytest.mark.parametrize("host", ["evil.example", "evil.example:8000", "127.0.0.1.evil.example", "10.0.0.1:8000",
                                  "[2001:db8::1]:8000", "localhost.evil.example"])
@pytest.mark.parametrize("method, path", [("POST", "/v1/predict"), ("GET", "/"), ("GET", "/health")])
def test_a_loopback_server_refuses_other_hosts(local, host, method, path):
    """DNS rebinding: a page on evil.example whose name now points to 127.0.0.1 is same-origin
    for the browser, but its requests say Host: evil.example: 400, even for the page."""
    response = local.request(method, path, headers={"host": host}, content=BODY if method == "POST" else None)
    assert "loopback" in _problem(response, 400)


def test_a_server_not_on_loopback_answers_any_host(client):
    assert client.get("/health", headers={"host": "reviews.example.com"}).status_code == 200


def test_the_page_of_a_loopback_server_works_from_its_own_origin(local):
    """What the browser sends for the page at http://127.0.0.1:8000/ calling its own API."""
    own = {"origin": "http://127.0.0.1:8000", "content-type": "application/json"}
    assert local.get("/").status_code == 200
    assert local.get("/v1/model", headers=own).status_code == 200
    assert local.post("/v1/predict", content=BODY, headers=own).status_code == 200


# -- CORS ------------------------------------------------------------------------------------
def test_cors_is_off_by_default(client):
    response = client.options("/v1/predict", headers={"origin": "http://localhost:3000",
                                                      "access-control-request-method": "POST"})
    assert response.status_code >= 400
    assert "access-control-allow-origin" not in response.headers


def test_cors_origins_given_may_call_the_api_from_a_browser(predictor):
    """``cors_origins``: a preflight from an allowed origin is answered (without the API key),
    its requests pass the Origin check with the CORS header; other origins still get 403."""
    app = TestClient(create_app(predictor, api_key="k", cors_origins=["http://localhost:3000/",
                                                                      "https://a.example,https://b.example"]))
    preflight = app.options("/v1/predict", headers={"origin": "https://b.example",
                                                    "access-control-request-method": "POST",
                                                    "access-control-request-headers": "authorization,content-type"})
    assert preflight.status_code == 200
    assert preflight.headers["access-control-allow-origin"] == "https://b.example"
    assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
    headers = {"origin": "http://localhost:3000", "authorization": "Bearer k", "content-type": "application/json"}
    response = app.post("/v1/predict", content=BODY, headers=headers)
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "http://localhost:3000"
    assert app.post("/v1/predict", content=BODY, headers={**headers, "origin": "http://localhost:3001"}
                    ).status_code == 403
    assert app.post("/v1/predict", content=BODY, headers={**headers, "authorization": ""}).status_code == 401


def test_cors_star_lets_any_origin_in(predictor):
    app = TestClient(create_app(predictor, cors_origins=["*"]))
    response = app.post("/v1/predict", content=BODY, headers={"origin": "http://anywhere.example",
                                                              "content-type": "application/json"})
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    # still JSON only: a simple (preflight-free) text/plain request is refused
    assert app.post("/v1/predict", content=BODY, headers={"origin": "http://anywhere.example",
                                                          "content-type": "text/plain"}).status_code == 415


@pytest.mark.parametrize("origin", ["localhost:3000", "http://a.example/path", "ftp://a.example", "http://"])
def test_a_cors_origin_that_is_not_one_is_refused(predictor, origin, capsys):
    with pytest.raises(ValueError, match="is not an origin"):
        create_app(predictor, cors_origins=[origin])
    rc = main(["serve", "--model", "no-such-model", "--cors-origin", origin])
    from error_line import read_error_line

    assert "--cors-origin" in read_error_line(capsys, rc)


def test_helpers():
    assert parse_origins(["http://A.example:80/, https://b.example:8443", "*"]) == [
        "http://a.example", "https://b.example:8443", "*"]
    assert is_loopback("LOCALHOST.") and is_loopback("::1") and is_loopback("[::1]") and is_loopback("127.9.9.9")
    assert not is_loopback("0.0.0.0") and not is_loopback("localhost.example")
    assert content_type_problem(None) is None
