"""When ``reviewsense serve`` is ready, and saying so: the "serving at http://…" line and
``--ready-file``.

Ready means: every worker process has loaded its model (and warmed it up) and finished its
start-up, and ``GET /health`` on the listening socket has answered 200. Each worker's app is
wrapped in :class:`Lifespan`, which creates a file named by the worker's pid in a temporary
folder when its start-up completes; :class:`Readiness` (a thread of the ``serve`` process)
waits for one file per worker, then for ``/health``, then prints the line and writes the
ready file. The workers share one listening socket, so a request sent once the file exists is
accepted, and answered by a worker that holds the model.
"""

from __future__ import annotations

import http.client
import os
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .._fs import resolve_output, write_json

POLL = 0.05  # seconds between looks at the workers' files, and between /health probes


class Lifespan:
    """ASGI wrapper: ``on_ready()`` once the app's start-up is complete, ``on_stop()`` when its
    shutdown begins (uvicorn sends it after the server stopped accepting connections)."""

    def __init__(self, app, on_ready: Callable[[], None] | None = None, on_stop: Callable[[], None] | None = None):
        self.app, self.on_ready, self.on_stop = app, on_ready, on_stop

    async def __call__(self, scope, receive, send):
        if scope["type"] != "lifespan":
            return await self.app(scope, receive, send)

        async def receiving():
            message = await receive()
            if message["type"] == "lifespan.shutdown" and self.on_stop is not None:
                self.on_stop()
            return message

        async def sending(message):
            await send(message)
            if message["type"] == "lifespan.startup.complete" and self.on_ready is not None:
                self.on_ready()

        await self.app(scope, receiving, sending)


def mark_loaded(folder: str) -> None:
    """Tell the ``serve`` process that this worker's start-up is complete."""
    Path(folder, str(os.getpid())).touch()


def probe_host(host: str) -> str:
    """Where the serve process itself reaches a server bound to ``host`` (any address: loopback)."""
    return {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}.get(host, host)


class Readiness:
    """Waits, in a thread, until ``workers`` workers have called :func:`mark_loaded` and
    ``GET /health`` answers; then prints ``message`` (stderr) and writes ``ready_file``
    (``{"url", "pid", "workers"}``, atomically). :meth:`stop` removes the file (and the
    workers' folder); a file left by an earlier run is removed at once."""

    def __init__(self, url: str, host: str, port: int, workers: int, message: str, ready_file: str | None = None):
        self.url, self.host, self.port, self.workers, self.message = url, probe_host(host), port, workers, message
        self.ready_file = resolve_output(ready_file) if ready_file else None
        self.folder = tempfile.mkdtemp(prefix="reviewsense-serve-")
        self.ready = threading.Event()
        self._stopped = False
        self._lock = threading.Lock()
        if self.ready_file is not None and self.ready_file.is_file():
            self.ready_file.unlink()  # a stale one would say "ready" before this server is
        self._thread = threading.Thread(target=self._watch, name="reviewsense-readiness", daemon=True)

    def start(self) -> Readiness:
        self._thread.start()
        return self

    def _loaded(self) -> bool:
        try:
            return len(os.listdir(self.folder)) >= self.workers
        except OSError:
            return False

    def _healthy(self) -> bool:
        connection = http.client.HTTPConnection(self.host, self.port, timeout=2)
        try:
            connection.request("GET", "/health")
            return connection.getresponse().status == 200
        except (OSError, http.client.HTTPException):
            return False
        finally:
            connection.close()

    def _watch(self) -> None:
        while not self._stopped and not (self._loaded() and self._healthy()):
            time.sleep(POLL)
        with self._lock:
            if self._stopped:
                return
            print(self.message, file=sys.stderr, flush=True)
            if self.ready_file is not None:
                write_json(self.ready_file, {"url": self.url, "pid": os.getpid(), "workers": self.workers})
            self.ready.set()

    def stop(self) -> None:
        """Not ready any more (the server is shutting down): remove the ready file."""
        with self._lock:
            self._stopped = True
            if self.ready_file is not None and self.ready.is_set():
                self.ready_file.unlink(missing_ok=True)
            shutil.rmtree(self.folder, ignore_errors=True)

    def wrap(self, app: Any) -> Lifespan:
        """``app`` for a server in this process: marks itself loaded, stops readiness on shutdown."""
        return Lifespan(app, lambda: mark_loaded(self.folder), self.stop)
