"""Class names and other strings shown on a terminal: no character that steers it.

A class name comes from the user's data (labels, class folders, ``--classes``) or from a model
folder's manifest, and is printed by ``info``, ``evaluate``'s tables and ``predict``. A name
holding a control character (NUL, an escape sequence, a carriage return), a line separator or
a bidirectional override could rewrite what the terminal shows, so such names are refused where
they enter (:func:`control_character`), and any other string read from a model folder is shown
escaped (:func:`printable`).
"""

from __future__ import annotations

import unicodedata

# the invisible format characters that reorder text (bidi embeddings, overrides, isolates, marks)
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _steers(char: str) -> bool:
    return char in _BIDI or unicodedata.category(char) in ("Cc", "Zl", "Zp")


def control_character(name: str) -> str | None:
    """The first character of ``name`` that steers a terminal (C0/C1 controls, DEL, NUL, the line
    and paragraph separators, bidi controls), as an escape (``'\\x1b'``); None if there is none."""
    for char in name:
        if _steers(char):
            return ascii(char)
    return None


def printable(text: str) -> str:
    """``text`` with every character that steers a terminal written as its escape (``\\x1b``)."""
    return "".join(ascii(char)[1:-1] if _steers(char) else char for char in text)
