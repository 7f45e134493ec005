"""``reviewsense serve`` says it is serving when it is (issue: hardening, item 18): the
"serving at http://…" line and ``--ready-file`` come once every worker has loaded the model
and the socket answers; the file is gone once the server stops."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
from processes import group_alive

pytest.importorskip("fastapi")
httpx = pytest.importorskip("httpx")
pytest.importorskip("uvicorn")

from reviewsense.export import save_model  # noqa: E402


@pytest.fixture(scope="module")
def model_dir(predictor, tmp_path_factory):
    return save_model(predictor, tmp_path_factory.mktemp("ready") / "model")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.mark.parametrize("workers", [1, 2])
def test_ready_file_and_line_come_when_the_server_answers(model_dir, tmp_path, workers):
    """Poll for the ready file, then at once: the line is in the log, a prediction succeeds (no
    retry), the file names the URL and the serve process; after SIGTERM the file is gone and
    no process is left. A stale ready file from an earlier run is removed at start."""
    port, log, ready = _free_port(), tmp_path / "serve.log", tmp_path / "run" / "ready.json"
    ready.parent.mkdir()
    ready.write_text('{"url": "stale"}')
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "reviewsense.cli", "serve", "--model", str(model_dir),
                                 "--port", str(port), "--workers", str(workers), "--ready-file", str(ready)],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while not (ready.is_file() and "stale" not in ready.read_text()):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, f"no ready file: {log.read_text()}"
            time.sleep(0.01)
        response = httpx.post(f"http://127.0.0.1:{port}/v1/predict", json={"texts": ["a great film"]}, timeout=10)
        assert response.status_code == 200, response.text
        assert f"at http://127.0.0.1:{port}/ with {workers} worker" in log.read_text()
        assert json.loads(ready.read_text()) == {"url": f"http://127.0.0.1:{port}/", "pid": proc.pid,
                                                 "workers": workers}
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        assert not ready.exists(), log.read_text()
        deadline = time.monotonic() + 10  # the workers (and multiprocessing's helper) exit with it
        while group_alive(proc.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert list(ready.parent.iterdir()) == []  # no temporary left beside it
    finally:
        if group_alive(proc.pid):
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
            raise AssertionError(f"server processes outlived SIGTERM: {log.read_text()}")


def test_the_serving_line_is_printed_only_once_the_server_answers(model_dir, tmp_path):
    """Watching the log: when the line appears, /health already answers."""
    port, log = _free_port(), tmp_path / "serve.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "reviewsense.cli", "serve", "--model", str(model_dir),
                                 "--port", str(port), "--workers", "1"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 90
        while "serving the" not in log.read_text():
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()
            time.sleep(0.01)
        assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=5).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, log.read_text()


def test_a_ready_file_that_cannot_be_written_is_refused_before_serving(model_dir, tmp_path, capsys):
    from error_line import read_error_line

    from reviewsense.cli import main

    rc = main(["serve", "--model", str(model_dir), "--port", str(_free_port()), "--ready-file", str(tmp_path)])
    assert "is a folder" in read_error_line(capsys, rc)
