"""What an exported model folder holds (``reviewsense info``).

The folder is checked exactly as :func:`~reviewsense.export.load_model` checks it — it *is*
loaded (a model folder runs no code: no pickle, no remote code): the manifest's every field
(:func:`~reviewsense.export.bundle.check_manifest`), every file's size and SHA-256, the weights,
the configuration and a probe batch of finite scores. A folder that loading refuses is
reported as refused, never described. What is shown comes from the manifest, every string
escaped for the terminal (:func:`~reviewsense._names.printable`).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ._names import printable
from .export.bundle import _OWN_FILES, MANIFEST, load_model

# recorded metrics shown, in this order (the manifest holds what evaluate() returned)
METRIC_KEYS = ("accuracy", "loss", "f1", "macro_f1", "mae", "roc_auc", "ece", "count")
# the training settings worth a line: the run's own, and every parameter of the family it trained
# ("settings": family → its parameters; the whole configuration is in the manifest)
RUN_KEYS = ("model", "preset", "seed", "class_weight", "length_calibration", "settings")
# runs written by earlier versions, per kind of run ("linear" and "cnn": before the family registry)
SETTING_KEYS = {
    "preset": ("preset", "seed", "settings", "linear", "cnn", "length_calibration"),
    "seed": ("model", "embedding", "seed", "epochs", "batch_size", "learning_rate", "early_stopping", "settings",
             "length_calibration"),
    "cnn": ("model", "embedding", "seed", "settings", "length_calibration"),
    "nblinear": ("model", "seed", "settings", "linear", "length_calibration"),
}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def model_info(path: str | os.PathLike[str]) -> dict[str, Any]:
    """The family, classes, recorded metrics, training data and settings, size on disk,
    format and creation date of the model folder ``path``.

    Raises :class:`~reviewsense.errors.ModelFileError` for a folder that loading refuses
    (the same checks: it is loaded)."""
    path = Path(path)
    manifest = load_model(path).metadata
    files = {name: int(entry["bytes"]) for name, entry in manifest["files"].items()}
    files[MANIFEST] = (path / MANIFEST).stat().st_size
    config = _dict(manifest.get("config"))
    training = _dict(manifest.get("training"))
    settings = _dict(training.get("config"))
    data = _dict(settings.get("data"))
    history = _dict(training.get("history"))
    metrics = _dict(manifest.get("metrics"))
    members = config.get("members")
    return {
        "path": str(path),
        "family": manifest.get("family"),
        "members": [_dict(m).get("family") for m in members] if isinstance(members, list) else None,
        "class_names": list(manifest["class_names"]),
        "created": manifest.get("created"),
        "reviewsense_version": manifest.get("reviewsense_version"),
        "format": manifest["format"],
        "format_version": manifest["format_version"],
        "size_bytes": sum(files.values()),
        "files": files,
        "extra_files": {name: size for name, size in files.items() if name not in (MANIFEST, *_OWN_FILES)},
        "vocabulary_size": manifest.get("vocabulary_size"),
        "length_calibration": manifest.get("length_calibration") is not None,
        "metrics": {split: {k: _dict(metrics[split]).get(k) for k in METRIC_KEYS if k in _dict(metrics[split])}
                    for split in ("test", "validation") if split in metrics},
        "training": {
            "data": training.get("data"),
            "test_data": data.get("test_path"),
            # the columns of the user's own file (IMDB, data.path None or its archive/folder, has none)
            "columns": ({k: data[k] for k in ("text_column", "label_column", "group_column") if data.get(k)} or None)
            if data.get("path") and not _is_imdb(data["path"]) else None,
            "rows": _dict(training.get("rows")) or None,
            "settings": {k: settings[k] for k in _setting_keys(settings) if k in settings} or None,
            "epochs": {"run": history["epochs"], "best": history.get("best_epoch")} if "epochs" in history else None,
        } if training else None,
        "config": config,
    }


def _is_imdb(path: str) -> bool:
    from .data.imdb import is_imdb_source

    return is_imdb_source(path)


def _setting_keys(settings: dict[str, Any]) -> tuple[str, ...]:
    if "n_jobs" in settings:  # written by this version: the family's parameters hold its schedule
        return RUN_KEYS
    kind = "preset" if settings.get("preset") else str(settings.get("model"))
    return SETTING_KEYS.get(kind, ("model", "seed", "settings"))


def _shown_settings(settings: dict[str, Any]) -> str:
    """``key=value`` pairs; a family's parameters as those that differ from its defaults."""
    from .models.params import defaults
    from .models.registry import families

    parts = []
    for key, value in settings.items():
        if value in (None, {}) or (key == "model" and settings.get("preset")):  # a preset's run: not its model
            continue
        if key != "settings" or not isinstance(value, dict):
            parts.append(_pairs({key: value}))
            continue
        for name, params in value.items():
            declared = families().get(name)
            base = defaults(declared.params) if declared is not None else {}
            changed = {k: v for k, v in _dict(params).items() if k not in base or base[k] != v}
            parts.append(f"{name}: " + (_pairs(changed) or "defaults"))
    return ", ".join(parts)


def _pairs(values: dict[str, Any], prefix: str = "") -> str:
    """``key=value`` pairs, nested objects as ``outer.inner=value`` and lists as ``a,b,c``:
    text for a reader, never a Python repr."""
    parts = []
    for key, value in values.items():
        if isinstance(value, dict):
            parts.append(_pairs(value, f"{prefix}{key}.") or f"{prefix}{key}=none")
        elif isinstance(value, list):
            parts.append(f"{prefix}{key}=" + (",".join(_scalar(v) for v in value) or "none"))
        else:
            parts.append(f"{prefix}{key}={_scalar(value)}")
    return ", ".join(parts)


def _scalar(value: Any) -> str:
    if isinstance(value, dict | list):  # a list of lists or objects: JSON, still no Python repr
        return json.dumps(value, ensure_ascii=False)
    return "none" if value is None else str(value).lower() if isinstance(value, bool) else str(value)


def _size(count: int) -> str:
    n = float(count)
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{int(n):,} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    raise AssertionError  # unreachable


def _metric_line(values: dict[str, Any]) -> str:
    parts = []
    for key in METRIC_KEYS[:-1]:
        if key in values:
            value = values[key]
            parts.append(f"{key} {format(value, '.4f') if isinstance(value, int | float) else 'n/a'}")
    if isinstance(values.get("count"), int):
        parts.append(f"({values['count']:,} texts)")
    return "  ".join(parts) or "none recorded"


def format_info(info: dict[str, Any]) -> str:
    """The :func:`model_info` result as aligned lines for a terminal."""
    names = info["class_names"]
    classes = ("negative (0), positive (1)" if names == ["negative", "positive"] else
               f"{names[0]} (0, negative), {names[1]} (1, positive)") if len(names) == 2 else \
        f"{len(names)}: " + ", ".join(f"{name} ({i})" for i, name in enumerate(names))
    family = info["family"] + (f" ({' + '.join(map(str, info['members']))})" if info["members"] else "")
    lines = [
        ("model folder", info["path"]),
        ("family", family),
        ("classes", classes),
        ("created", f"{info['created'] or 'not recorded'} with reviewsense {info['reviewsense_version'] or '?'}"),
        ("format", f"{info['format']} v{info['format_version']}"),
        ("size on disk", f"{_size(info['size_bytes'])} in {len(info['files'])} files (checksums verified, loaded)"),
    ]
    if info["extra_files"]:
        extra = info["extra_files"].items()
        lines.append(("extra files", ", ".join(f"{name} ({_size(size)})" for name, size in extra)))
    if info["vocabulary_size"] is not None:
        lines.append(("vocabulary", f"{info['vocabulary_size']:,} words"))
    lines.append(("length calibration", "yes" if info["length_calibration"] else "no"))
    for split in ("test", "validation"):
        if split in info["metrics"]:
            lines.append((split, _metric_line(info["metrics"][split])))
    if not info["metrics"]:
        lines.append(("metrics", "none recorded"))
    training = info["training"]
    if training:
        lines.append(("training data", str(training["data"] or "not recorded")))
        if training["test_data"]:
            lines.append(("test data", str(training["test_data"])))
        if training["rows"]:
            lines.append(("rows", ", ".join(f"{k} {v:,}" for k, v in training["rows"].items()
                                            if isinstance(v, int))))
        if training["columns"]:
            lines.append(("columns", ", ".join(f"{k.removesuffix('_column')}: {v}"
                                               for k, v in training["columns"].items())))
        if training["epochs"]:
            best = training["epochs"]["best"]
            lines.append(("epochs", f"{training['epochs']['run']}" + (f" (best: {best})" if best else "")))
        if training["settings"]:
            lines.append(("settings", _shown_settings(training["settings"])))
    else:
        lines.append(("training", "not recorded"))
    width = max(len(label) for label, _ in lines)
    return "\n".join(f"{label:<{width}}  {printable(str(value))}" for label, value in lines)
