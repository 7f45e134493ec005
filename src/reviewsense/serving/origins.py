"""Who may drive the API from a browser: the request's ``Content-Type``, ``Host`` and ``Origin``.

A web page can make a browser send a "simple" cross-origin POST (``text/plain``, a form, a
body with no type) without asking the server first; a DNS-rebinding page can even reach a
server on 127.0.0.1 under its own host name. So (each one checked in :class:`.gateway.Gateway`):

- a request body must be JSON: ``Content-Type: application/json`` (or ``application/*+json``;
  a ``charset`` other than UTF-8 is refused), else 415. A body with no ``Content-Type`` at all
  is accepted (``httpx.post(content=…)``, ``urllib``): a browser sends one only from a page
  on another origin, and that request carries an ``Origin``, checked below;
- a request whose ``Origin`` is neither the server's own (``Origin`` = scheme://``Host``)
  nor one of the CORS origins allowed (``--cors-origin``) gets 403; requests without
  ``Origin`` (curl, scripts) are not browsers' and pass;
- a server bound to a loopback address answers only a ``Host`` that is a loopback name or
  address (``localhost``, ``*.localhost``, ``127.0.0.0/8``, ``[::1]``), else 400: a page
  whose DNS name was rebound to 127.0.0.1 sends its own name.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

LOOPBACK_NAMES = ("localhost",)
DEFAULT_PORTS = {"http": ":80", "https": ":443"}
CURL_HINT = "application/x-www-form-urlencoded"  # what curl -d sends


def is_loopback(host: str) -> bool:
    """Whether ``host`` (a name or an address, without port) means this machine only."""
    name = host.strip().lower().rstrip(".")
    if name in LOOPBACK_NAMES or name.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(name.strip("[]")).is_loopback
    except ValueError:
        return False


def host_name(header: str) -> str:
    """The name or address in a ``Host`` header, without its port (``[::1]:8000`` → ``::1``)."""
    header = header.strip()
    if header.startswith("["):
        return header[1:header.find("]")] if "]" in header else header
    return header.rpartition(":")[0] if header.count(":") == 1 else header


def normalize_origin(origin: str) -> str:
    """``scheme://host[:port]`` in lower case, without a default port or a trailing slash;
    ``ValueError`` for anything else (a path, no scheme). ``*`` stays ``*``."""
    origin = origin.strip()
    if origin == "*":
        return origin
    scheme, sep, netloc = origin.lower().rstrip("/").partition("://")
    if not sep or scheme not in DEFAULT_PORTS or not netloc or any(c in netloc for c in "/?#@ "):
        raise ValueError(f"'{origin}' is not an origin: give scheme://host[:port], e.g. http://localhost:3000, or *")
    default = DEFAULT_PORTS[scheme]
    return f"{scheme}://{netloc.removesuffix(default)}"


def parse_origins(values: Iterable[str]) -> list[str]:
    """CORS origins from options that may each hold several, comma-separated; normalized."""
    return [normalize_origin(part) for value in values for part in value.split(",") if part.strip()]


def same_origin(origin: str, host: str) -> bool:
    """Whether ``Origin`` names the server the request was sent to (its ``Host``, any scheme:
    a proxy in front may add TLS)."""
    try:
        origin = normalize_origin(origin)
    except ValueError:
        return False  # "null" (a sandboxed frame, a file: page) and anything malformed
    _, _, netloc = origin.partition("://")
    host = host.strip().lower()
    return netloc in {host, *(host.removesuffix(port) for port in DEFAULT_PORTS.values())}


def origin_problem(origin: str, host: str | None, allowed: frozenset[str]) -> str | None:
    """Why a request with this ``Origin`` is refused (403), or None when it may pass."""
    if "*" in allowed or (host is not None and same_origin(origin, host)):
        return None
    try:
        if normalize_origin(origin) in allowed:
            return None
    except ValueError:
        pass
    return (f"requests from the web page of origin '{origin[:100]}' are not allowed: the server answers its own "
            "page and the origins given with --cors-origin")


def content_type_problem(header: str | None) -> str | None:
    """Why a request body of this ``Content-Type`` is refused (415), or None for JSON (and for
    no ``Content-Type`` at all)."""
    if header is None:
        return None
    media, _, parameters = header.partition(";")
    media = media.strip().lower()
    if media == "application/json" or (media.startswith("application/") and media.endswith("+json")):
        for parameter in parameters.split(";"):
            key, _, value = parameter.partition("=")
            if key.strip().lower() == "charset" and value.strip().strip('"').lower() not in ("utf-8", "utf8"):
                return f"charset '{value.strip()[:40]}' is not supported: send the JSON body in UTF-8"
        return None
    hint = " (curl -d sends a form: add -H 'Content-Type: application/json')" if media == CURL_HINT else ""
    return (f"Content-Type '{media[:60]}' is not supported: send the body as JSON with "
            f"'Content-Type: application/json'{hint}")
