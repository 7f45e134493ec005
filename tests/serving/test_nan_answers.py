"""The HTTP API never answers a bare ``NaN`` nor a 500 for a text the model computes a NaN or
infinite probability for (issue: hardening, item 6): 422 naming the text."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("fastapi")
pytest.importorskip("httpx")

from fastapi.testclient import TestClient  # noqa: E402

from reviewsense.serving.app import create_app  # noqa: E402


@pytest.fixture
def nan_client(predictor, monkeypatch):
    """The app, then its model patched to give NaN (or inf) for texts holding "overflow"."""
    client = TestClient(create_app(predictor), raise_server_exceptions=False)
    real = predictor.predict_proba

    def proba(texts):
        p = np.array(real(texts), dtype=np.float64)
        for i, text in enumerate(texts):
            if "overflow" in text:
                p[i] = np.inf if "inf" in text else np.nan
        return p

    monkeypatch.setattr(predictor, "predict_proba", proba)
    return client


@pytest.mark.parametrize("texts, bad", [(["overflow"], 0), (["a great film", "dull", "overflow inf"], 2),
                                        (["great " * 5_000, "overflow"], 1)])  # the last one off the event loop
@pytest.mark.parametrize("explain", [False, True])
def test_a_nan_probability_is_422_naming_the_text(nan_client, texts, bad, explain):
    response = nan_client.post("/v1/predict", json={"texts": texts, "explain": explain})
    assert response.status_code == 422, response.text[:300]
    assert response.headers["content-type"] == "application/json"
    assert f"NaN or infinite probabilities for texts[{bad}]" in response.json()["detail"]
    assert "NaN," not in response.text and "Infinity" not in response.text


def test_other_texts_are_still_scored(nan_client):
    response = nan_client.post("/v1/predict", json={"texts": ["a great film"]})
    assert response.status_code == 200 and len(response.json()["predictions"]) == 1
