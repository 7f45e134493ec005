"""Connection guards for uvicorn: a header timeout and a cap on open connections.

uvicorn holds a connection that sends nothing, or only part of a request's headers, for as
long as the client likes (its keep-alive timeout is cancelled by the first byte, and h11 /
httptools have no header timeout). :func:`protocol_class` returns uvicorn's HTTP protocol
(httptools or h11) with two guards added:

- **header timeout**: a connection has ``header_timeout`` seconds, from the moment it is
  opened or its previous response was sent, to complete the headers of its next request;
  otherwise it is closed (with a ``408`` when it had sent part of a request);
- **max connections**: past ``max_connections`` open connections, a new one closes the
  connection that has waited longest for its request headers (idle or half-sent); when every
  connection is busy with a request, the new one gets ``503`` and is closed.

A request's *body* has its own timeout (``Limits.body_timeout``, in :class:`..app.Gateway`).
``reviewsense serve`` passes the class to uvicorn; with ``--workers N`` each worker builds it
from ``$REVIEWSENSE_SERVE_CONFIG`` (:func:`from_env`).
"""

from __future__ import annotations

import json
import os
import weakref
from functools import cache
from typing import Any

HEADER_TIMEOUT = 10.0  # seconds to complete a request's headers
MAX_CONNECTIONS = 1_000  # open connections per server process
ENV_CONFIG = "REVIEWSENSE_SERVE_CONFIG"  # the same variable as app.ENV_CONFIG


def _response(status: bytes, detail: str, *headers: bytes) -> bytes:
    body = json.dumps({"detail": detail}).encode()
    return b"\r\n".join([b"HTTP/1.1 " + status, b"content-type: application/json",
                         b"content-length: %d" % len(body), *headers, b"connection: close", b"", body])


_TIMEOUT_408 = _response(b"408 Request Timeout", "request headers not received in time")
_FULL_503 = _response(b"503 Service Unavailable", "too many open connections", b"retry-after: 1")

# per server (its uvicorn ServerState): the connections waiting for request headers, oldest first
_WAITING: weakref.WeakKeyDictionary[Any, dict[Any, None]] = weakref.WeakKeyDictionary()


# uvicorn's protocol classes are what _Guard is mixed into; for the type checker it is any of them
_Protocol: Any = object


class _Guard(_Protocol):
    """Mixin put before a uvicorn HTTP protocol class (see the module docstring).

    A request has started when the protocol's ``cycle`` (one per request, created when the
    headers are complete, in h11 and httptools alike) changes; the connection waits for
    headers again once that cycle's response is complete."""

    header_timeout: float = HEADER_TIMEOUT
    max_connections: int = MAX_CONNECTIONS

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._header_timer = None
        self._seen_cycle = self.cycle
        self._partial = False
        waiting = _WAITING.setdefault(self.server_state, {})
        if len(self.connections) > self.max_connections:
            victim = next(iter(waiting), None)
            if victim is None:  # every connection is busy with a request
                transport.write(_FULL_503)
                transport.close()
                return
            victim._stop_waiting()
            victim.transport.close()
        self._wait()

    def data_received(self, data: bytes) -> None:
        if self._header_timer is not None and data:
            self._partial = True
        super().data_received(data)
        self._check_cycle()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._check_cycle()
        if self._header_timer is None and self.cycle is not None and self.cycle.response_complete \
                and not self.transport.is_closing():
            self._wait()  # the next request's headers are due within header_timeout

    def connection_lost(self, exc) -> None:
        self._stop_waiting()
        super().connection_lost(exc)

    # -- the guard's own state -------------------------------------------------------------
    def _check_cycle(self) -> None:
        if self.cycle is not self._seen_cycle:  # a request's headers are complete
            self._seen_cycle = self.cycle
            self._stop_waiting()
        elif self.transport.get_protocol() is not self:  # handed over (an upgrade): not ours any more
            self._stop_waiting()

    def _wait(self) -> None:
        self._stop_waiting()
        self._partial = False
        self._header_timer = self.loop.call_later(self.header_timeout, self._headers_timed_out)
        _WAITING.setdefault(self.server_state, {})[self] = None

    def _stop_waiting(self) -> None:
        timer = getattr(self, "_header_timer", None)
        if timer is not None:
            timer.cancel()
            self._header_timer = None
        waiting = _WAITING.get(self.server_state)
        if waiting is not None:
            waiting.pop(self, None)

    def _headers_timed_out(self) -> None:
        self._header_timer = None
        self._stop_waiting()
        if not self.transport.is_closing():
            if self._partial:
                self.transport.write(_TIMEOUT_408)
            self.transport.close()


@cache
def protocol_class(header_timeout: float = HEADER_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                   http: str = "auto") -> type:
    """uvicorn's HTTP protocol (``http``: "auto" = httptools when installed, else h11) with
    the header timeout and the connection cap; pass it to uvicorn as ``http=``."""
    if header_timeout <= 0 or max_connections < 1:
        raise ValueError("header_timeout must be > 0 and max_connections >= 1")
    if http == "auto":
        from uvicorn.protocols.http.auto import AutoHTTPProtocol as base
    elif http == "h11":
        from uvicorn.protocols.http.h11_impl import H11Protocol as base
    elif http == "httptools":
        from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol as base
    else:
        raise ValueError(f"unknown HTTP implementation {http!r}")
    return type(f"Guarded{base.__name__}", (_Guard, base),
                {"header_timeout": float(header_timeout), "max_connections": int(max_connections),
                 "__module__": __name__})


def uvicorn_options(header_timeout: float = HEADER_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                    http: str = "auto") -> dict[str, Any]:
    """uvicorn settings for a guarded server (in this process): the guarded protocol, no
    WebSockets (the app has none; an upgraded connection would leave the guard), a 5 s
    keep-alive timeout."""
    return {"http": protocol_class(header_timeout, max_connections, http), "ws": "none", "timeout_keep_alive": 5}


def serve_options(header_timeout: float = HEADER_TIMEOUT, max_connections: int = MAX_CONNECTIONS,
                  workers: int = 1) -> dict[str, Any]:
    """uvicorn settings for ``reviewsense serve``: :func:`uvicorn_options` in this process, or
    for ``workers`` > 1 the same built in each worker by :func:`from_env` (the caller puts
    ``{"connections": {"header_timeout": …, "max_connections": …}}`` in ``$REVIEWSENSE_SERVE_CONFIG``).
    Raises the open-files limit to make room for ``max_connections`` (workers inherit it)."""
    raise_open_files_limit(max_connections + 256)
    options = uvicorn_options(header_timeout, max_connections)
    if workers > 1:
        options["http"] = f"{__name__}:from_env"
    return options


def from_env(**kwargs):
    """A guarded protocol for a uvicorn worker process: its settings come from
    ``$REVIEWSENSE_SERVE_CONFIG`` (key ``connections``). uvicorn calls this as the protocol
    class (``http="reviewsense.serving.connections:from_env"``)."""
    return _env_protocol()(**kwargs)


@cache
def _env_protocol() -> type:
    return protocol_class(**json.loads(os.environ.get(ENV_CONFIG, "{}")).get("connections", {}))


def raise_open_files_limit(needed: int) -> int:
    """Raise this process's soft limit on open files to at least ``needed`` (up to the hard
    limit) so that the connection cap, not the limit, decides; returns the soft limit."""
    try:
        import resource
    except ImportError:  # pragma: no cover - Windows
        return needed
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(needed, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    return soft if soft != resource.RLIM_INFINITY else needed
