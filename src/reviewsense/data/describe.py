"""`reviewsense data describe` / `data head`: what is in a dataset, at a glance."""

from __future__ import annotations

from typing import Any

import numpy as np

from .dataset import Dataset


def describe(data: Dataset) -> dict[str, Any]:
    """Counts, class balance and length percentiles (in words and characters)."""
    words = np.array([len(t.split()) for t in data.texts], dtype=np.int64)
    chars = np.array([len(t) for t in data.texts], dtype=np.int64)
    pct = [0, 5, 25, 50, 75, 95, 100]
    out: dict[str, Any] = {"name": data.name, "rows": len(data)}
    labelled = data.labels >= 0
    if labelled.any():
        counts = np.bincount(data.labels[labelled], minlength=len(data.class_names))
        out["classes"] = {
            data.class_names[k]: {"count": int(counts[k]), "share": round(float(counts[k]) / int(labelled.sum()), 4)}
            for k in range(len(data.class_names))
        }
    if (~labelled).any():
        out["unlabelled"] = int((~labelled).sum())
    if len(data):
        out["words"] = {f"p{p}": int(v) for p, v in zip(pct, np.percentile(words, pct, method="nearest"), strict=True)}
        out["chars"] = {f"p{p}": int(v) for p, v in zip(pct, np.percentile(chars, pct, method="nearest"), strict=True)}
        out["words"]["mean"] = round(float(words.mean()), 1)
    return out


def format_description(info: dict[str, Any]) -> str:
    lines = [f"{info['name']}: {info['rows']:,} rows"]
    for name, c in info.get("classes", {}).items():
        lines.append(f"  {name:<10} {c['count']:>8,}  ({c['share']:.1%})")
    if "unlabelled" in info:
        lines.append(f"  {'unlabelled':<10} {info['unlabelled']:>8,}")
    for unit in ("words", "chars"):
        if unit in info:
            p = info[unit]
            lines.append(
                f"  length in {unit}: min {p['p0']:,}  p5 {p['p5']:,}  p25 {p['p25']:,}  median {p['p50']:,}"
                f"  p75 {p['p75']:,}  p95 {p['p95']:,}  max {p['p100']:,}"
            )
    return "\n".join(lines)


def head(data: Dataset, n: int = 10, width: int = 100) -> str:
    """The first ``n`` rows with their labels, texts cut to ``width`` characters (0 = whole)."""
    lines = []
    for i in range(min(n, len(data))):
        label = data.class_names[data.labels[i]] if data.labels[i] >= 0 else "?"
        text = " ".join(data.texts[i].split())
        if width and len(text) > width:
            text = text[: width - 1] + "…"
        ident = f"{data.ids[i]}  " if data.ids else ""
        lines.append(f"{ident}[{label}] {text}")
    return "\n".join(lines)
