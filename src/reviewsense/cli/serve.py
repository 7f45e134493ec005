"""``reviewsense serve``: the HTTP API and web page."""

from __future__ import annotations

import json
import sys

from ..errors import ConfigError


def _check_bindable(host: str, port: int) -> None:
    """Refuse, before saying "serving at …", an address that cannot be listened on (port in use, an
    interface this machine does not have, a privileged port)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot be resolved ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or "
                              "--host") from None


def _api_key(option: str | None, env: str | None) -> str | None:
    """The key from ``--api-key``, else ``$REVIEWSENSE_API_KEY``, else none. An empty or blank one
    (``--api-key "$KEY"`` with KEY unset) is refused: it would serve with no authentication."""
    source, key = ("--api-key", option) if option is not None else ("REVIEWSENSE_API_KEY", env)
    if key is not None and not key.strip():
        raise ConfigError(f"{source} is empty (or only spaces): give a key, or leave it unset to "
                          "serve without one")
    return key


def cmd_serve(args) -> int:
    import os

    from .._fs import check_writable
    from ..errors import require
    from ..export import load_model

    require("fastapi", "serve", "reviewsense serve")
    uvicorn = require("uvicorn", "serve", "reviewsense serve")

    from ..serving.app import Limits, create_app
    from ..serving.origins import is_loopback, parse_origins
    from ..serving.readiness import Readiness

    api_key = _api_key(args.api_key, os.environ.get("REVIEWSENSE_API_KEY"))
    try:
        origins = parse_origins(args.cors_origin)
    except ValueError as exc:
        raise ConfigError(f"--cors-origin {exc}") from None
    if args.ready_file:
        check_writable(args.ready_file, inputs=[args.model])
    model = load_model(args.model)  # here too with --workers: a bad folder is one clean error
    family = model.family
    limits = Limits(max_texts=args.max_texts, max_chars=args.max_chars,
                    max_body_bytes=int(args.max_body_mb * 1024 * 1024), body_timeout=args.body_timeout)
    _check_bindable(args.host, args.port)  # a port in use is one line, not "serving at …" then a uvicorn error
    loopback = is_loopback(args.host)
    if not loopback and not api_key:
        print(f"reviewsense: warning: serving on {args.host} without an API key: anyone who can reach this "
              "port can use the model (set --api-key or REVIEWSENSE_API_KEY)", file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host
    url = f"http://{host}:{args.port}/"
    workers = args.workers or os.cpu_count() or 1
    # said once every worker has loaded the model and the socket answers (serving/readiness.py)
    ready = Readiness(url, args.host, args.port, workers, ready_file=args.ready_file, message=(
        f"serving the {family} model from {args.model} at {url} with {workers} worker "
        f"process{'es' if workers > 1 else ''} (API docs at /docs{', API key required' if api_key else ''}); "
        "Ctrl+C stops"))
    from ..serving.connections import serve_options

    # header timeout and connection cap, in every worker (keep-alive timeout 5 s, no WebSockets)
    options = {"host": args.host, "port": args.port, "log_level": "warning", "access_log": args.access_log,
               **serve_options(args.header_timeout, args.max_connections, workers)}
    try:
        ready.start()
        if workers == 1:
            uvicorn.run(ready.wrap(create_app(model, limits, api_key, origins, loopback)), **options)
            return 0
        from dataclasses import asdict

        from ..serving.app import ENV_CONFIG

        del model  # each worker process loads its own; the supervisor keeps no copy
        os.environ[ENV_CONFIG] = json.dumps({
            "model": str(args.model), "limits": asdict(limits), "api_key": api_key, "cors_origins": origins,
            "loopback": loopback, "ready_dir": ready.folder,
            "connections": {"header_timeout": args.header_timeout, "max_connections": args.max_connections}})
        uvicorn.run("reviewsense.serving.app:app_from_env", factory=True, workers=workers, **options)
        return 0
    finally:
        ready.stop()
