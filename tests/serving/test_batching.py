"""Concurrent requests to a model that scores batches better (a transformer) are scored together."""

from __future__ import annotations

import asyncio
import threading

import httpx
import numpy as np
import pytest

from reviewsense.serving.app import create_app


class CountingPredictor:
    """Wraps a real predictor: says ``batch_requests`` and records each batch it scores."""

    def __init__(self, inner, fail_on: str | None = None) -> None:
        self.inner, self.batches, self.fail_on = inner, [], fail_on
        self.gate = threading.Event()

    def __getattr__(self, name):
        return getattr(self.inner, name)

    batch_requests = True

    def predict_proba(self, texts):
        texts = list(texts)
        if self.batches:  # the warm-up was the first: later batches wait until every request is in
            self.gate.wait(5)
        self.batches.append(texts)
        if self.fail_on and self.fail_on in texts:
            raise RuntimeError("scoring failed")
        return self.inner.predict_proba(texts)


async def _post_all(app, bodies):
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        return await asyncio.gather(*(client.post("/v1/predict", json=body) for body in bodies))


def test_concurrent_requests_are_scored_together_and_answered_each_its_own(predictor):
    wrapped = CountingPredictor(predictor)
    app = create_app(wrapped)
    bodies = [{"texts": [f"great film {i}", "awful plot"]} for i in range(12)]

    async def run():
        asyncio.get_running_loop().call_later(0.2, wrapped.gate.set)
        return await _post_all(app, bodies)

    responses = asyncio.run(run())
    assert all(r.status_code == 200 for r in responses)
    for body, response in zip(bodies, responses, strict=True):
        expected = predictor.predict_proba(body["texts"])[:, 1]
        got = [row["probability"] for row in response.json()["predictions"]]
        assert np.allclose(got, expected, atol=1e-6)
    scored = wrapped.batches[1:]  # after the warm-up
    assert sum(map(len, scored)) == 24 and len(scored) < 12  # fewer batches than requests


def test_a_failed_batch_fails_its_requests_and_the_server_goes_on(predictor):
    wrapped = CountingPredictor(predictor, fail_on="boom")
    wrapped.gate.set()
    app = create_app(wrapped)
    with pytest.raises(RuntimeError, match="scoring failed"):
        asyncio.run(_post_all(app, [{"texts": ["boom"]}]))
    responses = asyncio.run(_post_all(app, [{"texts": ["great"]}, {"texts": ["awful"]}]))
    assert [r.status_code for r in responses] == [200, 200]
