"""Text stage: strings → token ids / bags (:class:`TextVectorizer`) and word vectors."""

from .vectorizer import TextVectorizer

__all__ = ["TextVectorizer"]
