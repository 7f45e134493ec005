"""What every benchmark script shares: where the data is, the machine line, the JSON file."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_DATA = os.environ.get("REVIEWSENSE_IMDB", str(ROOT.parent / "shared/datasets/imdb/aclImdb_v1.tar.gz"))


def machine() -> dict[str, str]:
    return {"date": dt.date.today().isoformat(), "machine": f"{platform.machine()}, {os.cpu_count()} CPU cores",
            "python": platform.python_version()}


def write_results(path: str | Path, meta: dict, rows: list[dict]) -> None:
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "results": rows}, indent=2) + "\n")
    print(f"\nwrote {out}")
