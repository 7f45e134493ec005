"""User-facing errors.

Anything the user can fix (a bad file, a missing column, a tampered model) raises
:class:`ReviewsenseError`. The CLI prints its message on one line and exits with code 2;
library users can catch it like any other exception.
"""

from __future__ import annotations


class ReviewsenseError(Exception):
    """An error caused by the user's input, with a message that says what to fix."""

    exit_code = 2


class DataError(ReviewsenseError, ValueError):
    """A data file or data source is missing or malformed."""


class TextTypeError(ReviewsenseError, TypeError):
    """Something given as a text is not a string (``predict_proba([None])``)."""


class ModelFileError(ReviewsenseError, ValueError):
    """A saved model folder is missing, tampered with or of an unknown format."""


class ConfigError(ReviewsenseError, ValueError):
    """A setting is out of range or of the wrong kind."""


class OutputError(ReviewsenseError, ValueError):
    """A result cannot be written where asked (a folder, the input itself, a read-only place)."""


class ScoreError(ReviewsenseError, ValueError):
    """The model computed a NaN or infinite number for a text (its weights overflow on it):
    refused rather than written as a bare ``NaN`` (not JSON) or turned into a label."""


class Interrupted(ReviewsenseError):
    """Training stopped on SIGINT/SIGTERM after writing a checkpoint (exit code 130)."""

    exit_code = 130


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it unwinds like Ctrl+C: temporary files are
    removed, nothing half-written is left (the CLI exits with 143)."""


class MissingDependencyError(ReviewsenseError, ImportError):
    """An optional dependency (e.g. torch, gensim) is needed but not installed."""


def require(module: str, extra: str, purpose: str):
    """Import an optional dependency or raise a message telling how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise MissingDependencyError(
            f"{purpose} needs the '{module}' package: "
            f"pip install -c constraints.txt 'reviewsense[{extra}]'"
        ) from exc
