"""Text stage: strings → token ids / bags (:class:`TextVectorizer`), fast hashed n-gram
features (:class:`NgramVectorizer`), and word vectors."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from .._fs import write_json
from ..errors import ModelFileError
from .ngrams import NgramVectorizer
from .vectorizer import TextVectorizer

__all__ = ["MemberVectorizers", "NgramVectorizer", "TextVectorizer", "load_vectorizer", "vectorizer_from_dict"]

MEMBERS_FORMAT = "reviewsense-member-vectorizers"
NONE = {"format": "none"}  # a member that tokenizes with files of its own (a transformer's tokenizer)


class MemberVectorizers:
    """The vectorizers of an ensemble's members, saved together in one ``vectorizer.json``."""

    FORMAT = MEMBERS_FORMAT

    def __init__(self, members: list[Any]) -> None:  # TextVectorizer | NgramVectorizer | None
        self.members = list(members)

    @property
    def vocabulary_size(self) -> int:
        return sum(m.vocabulary_size for m in self.members if m is not None)

    def to_dict(self) -> dict[str, Any]:
        return {"format": MEMBERS_FORMAT, "format_version": 1,
                "members": [NONE if m is None else m.to_dict() for m in self.members]}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> MemberVectorizers:
        members = data.get("members")
        if data.get("format_version") != 1 or not isinstance(members, list) or not members:
            raise ModelFileError("invalid member vectorizers: expected format_version 1 and a list of members")
        if any(isinstance(m, dict) and m.get("format") == MEMBERS_FORMAT for m in members):
            raise ModelFileError("invalid member vectorizers: members cannot nest")
        return cls([None if m == NONE else vectorizer_from_dict(m) for m in members])

    def save(self, path: str | os.PathLike[str]) -> None:
        write_json(path, self.to_dict())


def vectorizer_from_dict(data: Any) -> TextVectorizer | NgramVectorizer | MemberVectorizers:
    """Rebuild whichever vectorizer ``data`` describes (dispatch on its ``format``)."""
    kind = data.get("format") if isinstance(data, dict) else None
    if kind == NgramVectorizer.FORMAT:
        return NgramVectorizer.from_dict(data)
    if kind == MEMBERS_FORMAT:
        return MemberVectorizers.from_dict(data)
    return TextVectorizer.from_dict(data)


def load_vectorizer(path: str | os.PathLike[str]) -> TextVectorizer | NgramVectorizer | MemberVectorizers:
    """Load whichever vectorizer a ``vectorizer.json`` holds."""
    try:
        data = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, RecursionError) as exc:
        raise ModelFileError(f"{path}: cannot read vectorizer ({exc})") from None
    return vectorizer_from_dict(data)
