"""The text rules every stage shares, in one place: what an HTML tag is and what a token is.

- :data:`TAG`: ``<…>`` (IMDB's ``<br />``), replaced by a space before tokenizing — by the
  n-gram vectorizer (in polars and in Python), the tutorial's vectorizer, the explanations
  (which keep every other character's offset) and the span cutter.
- :data:`NGRAM_TOKEN`: the n-gram models' tokens (``nblinear``): words with their apostrophes
  (``don't``), else one non-space character (punctuation). A plain pattern string, so that
  polars (Rust's regex) and Python's ``re`` apply the very same rule.
- :data:`WORD_TOKENS`: the tutorial vectorizer's tokens (``seed``, ``cnn``), Keras-style:
  words joined by inner apostrophes, with punctuation as tokens (``split``) or dropped (``strip``).

Saved vectorizers name their rule, so these patterns are part of the export format: change
one and models trained before tokenize differently.
"""

from __future__ import annotations

import re

TAG_PATTERN = r"<[^>]*>"
TAG = re.compile(TAG_PATTERN)
NGRAM_TOKEN = r"[\w']+|\S"
WORD_TOKENS = {
    "split": re.compile(r"\w+(?:'\w+)*|[^\w\s]"),
    "strip": re.compile(r"\w+(?:'\w+)*"),
}


def strip_tags(text: str, keep_offsets: bool = False) -> str:
    """``text`` with every HTML tag replaced by one space, or (``keep_offsets``) by as many
    spaces as it had characters, so that every other character keeps its position."""
    if "<" not in text:
        return text
    if keep_offsets:
        return TAG.sub(lambda m: " " * len(m.group()), text)
    return TAG.sub(" ", text)
