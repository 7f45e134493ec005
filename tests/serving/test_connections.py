"""Connections that send nothing or half a request (``reviewsense.serving.connections``), on a
real uvicorn server on loopback: closed after the header timeout, bounded in number, while
real clients are served at once. Figures: ``python -m pytest tests/serving/test_connections.py -rP``."""

from __future__ import annotations

import selectors
import socket
import threading
import time

import pytest

httpx = pytest.importorskip("httpx")
uvicorn = pytest.importorskip("uvicorn")

from reviewsense.serving.app import Limits, create_app  # noqa: E402
from reviewsense.serving.connections import uvicorn_options  # noqa: E402

LIMITS = Limits(max_texts=8, max_chars=5_000, max_body_bytes=64 * 1024, body_timeout=20.0)
HALF_HEAD = b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: appl"  # no end of headers
IMPLEMENTATIONS = ["httptools", "h11"]


class Live:
    """The app under uvicorn in a background thread, on a free loopback port."""

    def __init__(self, predictor, **options):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        config = uvicorn.Config(create_app(predictor, LIMITS), host="127.0.0.1", port=self.port, log_level="error",
                                **options)
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def __enter__(self):
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert self.thread.is_alive() and time.monotonic() < deadline, "the server did not start"
            time.sleep(0.02)
        return self

    def __exit__(self, *exc):
        self.server.should_exit = True
        self.thread.join(10)
        self.sock.close()
        assert not self.thread.is_alive()

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def open_connections(self) -> int:
        return len(self.server.server_state.connections)

    def connect(self, send: bytes = b"") -> socket.socket:
        conn = socket.create_connection(("127.0.0.1", self.port), timeout=10)
        if send:
            conn.sendall(send)
        return conn


def _served_quickly(base: str, n: int = 5) -> float:
    """The slowest of ``n`` real requests (each on a new connection): all must be 200."""
    slowest = 0.0
    for i in range(n):
        t = time.monotonic()
        response = httpx.post(f"{base}/v1/predict", json={"texts": [f"a great film {i}", "an awful plot"]}, timeout=5)
        slowest = max(slowest, time.monotonic() - t)
        assert response.status_code == 200 and [p["label"] for p in response.json()["predictions"]] == [1, 0]
    return slowest


def _readable(conns: list[socket.socket], timeout: float) -> list[socket.socket]:
    """The connections with something to read (or closed), after up to ``timeout`` seconds
    (epoll: ``select.select`` stops at file descriptor 1024)."""
    with selectors.DefaultSelector() as selector:
        for conn in conns:
            selector.register(conn, selectors.EVENT_READ)
        return [key.fileobj for key, _ in selector.select(timeout)]


def _closed(conn: socket.socket) -> bytes | None:
    """What a connection the server closed had received (None if it is still open)."""
    if not _readable([conn], 0):
        return None
    data = b""
    conn.settimeout(5)
    while chunk := conn.recv(65536):
        data += chunk
    return data


@pytest.mark.parametrize("http", IMPLEMENTATIONS)
def test_idle_and_half_sent_connections_are_closed_after_the_header_timeout(predictor, http):
    """300 connections that send nothing and 300 that send half a request's headers (and a
    keep-alive connection that starts its second request and stalls): real clients are served
    at once meanwhile; after ``header_timeout`` every one of them is closed (408 for the
    half-sent ones), not before."""
    timeout = 2.0
    with Live(predictor, **uvicorn_options(header_timeout=timeout, max_connections=1_000, http=http)) as live:
        started = time.monotonic()
        idle = [live.connect() for _ in range(300)]
        half = [live.connect(HALF_HEAD) for _ in range(300)]
        keep_alive = live.connect(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert b"200 OK" in keep_alive.recv(65536)
        keep_alive.sendall(b"GET /health HTTP/1.1\r\nHost: 12")  # the keep-alive timer stops; ours does not
        opened = time.monotonic()
        slowest = _served_quickly(live.base)
        assert slowest < 1.0
        assert live.open_connections >= 601
        assert time.monotonic() - started < timeout * 0.8
        assert all(_closed(c) is None for c in [*idle, *half, keep_alive]), "closed before the header timeout"

        pending = {c: kind for kind, group in (("idle", idle), ("half", half), ("keep-alive", [keep_alive]))
                   for c in group}
        received: dict[str, list[bytes]] = {"idle": [], "half": [], "keep-alive": []}
        deadline = opened + timeout + 3.0
        while pending and time.monotonic() < deadline:
            for conn in _readable(list(pending), 0.2):
                received[pending.pop(conn)].append(_closed(conn))
                conn.close()
        last_closed = time.monotonic() - started
        assert not pending, f"{len(pending)} connections still open {deadline - opened:.1f} s after the last opened"
        assert all(data == b"" for data in received["idle"])
        assert all(data.startswith(b"HTTP/1.1 408 ") and b"headers not received" in data
                   for data in received["half"] + received["keep-alive"])
        time.sleep(0.2)
        assert live.open_connections == 0
        print(f"{http}: 601 stalled connections; real requests answered in at most {slowest * 1000:.0f} ms; "
              f"all stalled ones closed {last_closed:.2f} s after the first was opened (header timeout {timeout} s)")


@pytest.mark.parametrize("http", IMPLEMENTATIONS)
def test_past_max_connections_the_longest_waiting_connection_is_closed(predictor, http):
    """With ``max_connections`` = 50, 200 idle connections leave 50 open (the newest), and a
    real client is still served at once."""
    cap = 50
    with Live(predictor, **uvicorn_options(header_timeout=30, max_connections=cap, http=http)) as live:
        idle = []
        for _ in range(200):
            idle.append(live.connect())
            time.sleep(0.001)  # in order
        time.sleep(0.3)
        assert live.open_connections <= cap
        slowest = _served_quickly(live.base)
        assert slowest < 1.0
        time.sleep(0.2)
        still_open = [i for i, conn in enumerate(idle) if _closed(conn) is None]
        assert len(still_open) <= cap
        assert len(still_open) >= cap - 10 and min(still_open) >= 200 - cap - 10  # the newest ones
        assert live.open_connections <= cap
        for conn in idle:
            conn.close()
        print(f"{http}: 200 idle connections, cap {cap}: {len(still_open)} left open; "
              f"real requests answered in at most {slowest * 1000:.0f} ms")


@pytest.mark.parametrize("http", IMPLEMENTATIONS)
def test_when_every_connection_is_busy_a_new_one_gets_503(predictor, http):
    """Connections busy with a request (a stalled body) are not closed for a newcomer: it gets 503."""
    cap = 5
    with Live(predictor, **uvicorn_options(header_timeout=30, max_connections=cap, http=http)) as live:
        head = b"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: 100"
        busy = [live.connect(head + b"\r\n\r\n" + b'{"texts": ') for _ in range(cap)]
        time.sleep(0.3)
        newcomer = live.connect()
        newcomer.settimeout(5)
        answer = b""
        while chunk := newcomer.recv(65536):
            answer += chunk
        assert answer.startswith(b"HTTP/1.1 503 ") and b"too many open connections" in answer
        assert all(_closed(conn) is None for conn in busy)  # still waiting for their bodies
        for conn in busy:
            conn.close()
