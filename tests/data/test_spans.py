"""Spans of reviews: windows of words, sentences, whole reviews, labelled by their review."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from reviewsense.data.dataset import Dataset
from reviewsense.data.spans import BUCKETS, FULL, SENTENCE, WINDOWS, bucket_name, cut_spans, sentences_of, words_of

REVIEWS = Dataset(
    ["A fine film.<br /><br />The cast was great, and the plot moved fast! Would watch again?",
     "Dull. " * 30 + "The end.",
     "Short one"],
    np.array([1, 0, 1]), name="toy")


def test_every_review_gives_each_window_it_is_long_enough_for():
    spans = cut_spans(REVIEWS, seed=0)
    lengths = [len(words_of(t)) for t in REVIEWS.texts]
    for window in WINDOWS:
        picked = spans.where(bucket_name(window))
        assert len(picked) == sum(n >= window for n in lengths)
        assert all(len(spans.data.texts[i].split()) == window for i in picked)
    assert len(spans.where(FULL)) == 3 and len(spans.where(SENTENCE)) == 3
    assert set(spans.bucket) <= set(BUCKETS)


def test_spans_carry_their_review_label_and_come_from_it():
    spans = cut_spans(REVIEWS, seed=1)
    for text, label, origin in zip(spans.data.texts, spans.data.labels, spans.data.groups, strict=True):
        review = REVIEWS.texts[int(origin)]
        assert label == REVIEWS.labels[int(origin)]
        assert " ".join(text.split()) in " ".join(words_of(review)) or text == review


def test_sentences_split_after_end_marks_and_drop_tags():
    assert sentences_of(REVIEWS.texts[0]) == ["A fine film.", "The cast was great, and the plot moved fast!",
                                              "Would watch again?"]
    assert sentences_of("...") == [] and sentences_of("") == []


def test_same_seed_same_spans_other_seed_other_windows():
    a, b = cut_spans(REVIEWS, seed=3), cut_spans(REVIEWS, seed=3)
    assert a.data.texts == b.data.texts and list(a.bucket) == list(b.bucket)
    others = [cut_spans(REVIEWS, seed=s).data.texts for s in range(4, 10)]
    assert any(o != a.data.texts for o in others)


def test_unlabelled_data_is_refused():
    with pytest.raises(ValueError, match="labelled"):
        cut_spans(Dataset(["a text"], np.array([-1])))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.text(max_size=200), min_size=1, max_size=8), st.integers(0, 2**16))
def test_any_text_cuts_without_error_and_windows_have_their_length(texts, seed):
    data = Dataset(texts, np.arange(len(texts)) % 2)
    spans = cut_spans(data, seed=seed)
    assert len(spans.where(FULL)) == len(texts)
    for window in WINDOWS:
        assert all(len(spans.data.texts[i].split()) == window for i in spans.where(bucket_name(window)))
