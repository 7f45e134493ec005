"""One shape: ``predict_proba`` is ``(n, n_classes)`` in ``class_names`` order for every model,
two classes or more, from ``reviewsense.load`` as from the estimators; ``positive_proba`` is
column 1 of a two-class model."""

from __future__ import annotations

import numpy as np
import pytest

import reviewsense
from reviewsense import NBLinearClassifier
from reviewsense.errors import ConfigError
from reviewsense.models.base import result_row

FAST = {"hash_bits": 12, "span_weight": 0.0}
PROBE = ["great excellent film", "awful boring film", "an okay uneven film", "", "film"]


def _corpus(n: int, seed: int, classes: int) -> tuple[list[str], list[str]]:
    """Six filler words and two of the text's class."""
    rng = np.random.default_rng(seed)
    words = {"bad": ["awful", "boring", "dull"], "good": ["great", "excellent", "superb"],
             "meh": ["okay", "uneven", "average"]}
    labels = list(rng.choice(list(words)[:classes], n))
    texts = [" ".join([*rng.choice(["the", "film", "plot", "a", "was"], 6), *rng.choice(words[y], 2)])
             for y in labels]
    return texts, labels


@pytest.fixture(scope="module", params=[2, 3], ids=["two classes", "three classes"])
def fitted(request, tmp_path_factory):
    """An estimator of 2 or 3 classes and what ``reviewsense.load`` reads from its export."""
    texts, labels = _corpus(300, 3, request.param)
    estimator = NBLinearClassifier(**FAST).fit(texts, labels)
    folder = estimator.save(tmp_path_factory.mktemp("one_shape") / "model")
    return estimator, reviewsense.load(str(folder))


def test_predict_proba_is_n_by_n_classes_everywhere_and_rows_sum_to_one(fitted):
    estimator, loaded = fitted
    k = len(estimator.classes_)
    assert loaded.class_names == tuple(estimator.classes_.tolist())
    for proba in (estimator.predict_proba(PROBE), loaded.predict_proba(PROBE)):
        assert proba.shape == (len(PROBE), k)
        assert ((proba >= 0) & (proba <= 1)).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-6)
    np.testing.assert_allclose(estimator.predict_proba(PROBE), loaded.predict_proba(PROBE), rtol=1e-6)
    assert loaded.predict_proba("great").shape == (1, k) and loaded.predict_proba([]).shape == (0, k)
    # the columns are in class_names order: the top column is the predicted class (two: p ≥ 0.5, a tie to class 1)
    proba = loaded.predict_proba(PROBE)
    top = (proba[:, 1] >= 0.5).astype(int) if k == 2 else proba.argmax(axis=1)
    assert loaded.predict(PROBE).tolist() == top.tolist()
    assert estimator.predict(PROBE).tolist() == estimator.classes_[top].tolist()


def test_positive_proba_is_column_one_of_two_classes(fitted):
    estimator, loaded = fitted
    if len(estimator.classes_) > 2:
        with pytest.raises(ConfigError, match="two classes"):
            loaded.positive_proba(PROBE)
        return
    positive = loaded.positive_proba(PROBE)
    assert positive.shape == (len(PROBE),) and positive.dtype == np.float32
    np.testing.assert_array_equal(positive, loaded.predict_proba(PROBE)[:, 1])
    assert positive[0] > 0.5 > positive[1]
    # the logit is still one per text, that of class_names[1]
    np.testing.assert_allclose(1 / (1 + np.exp(-loaded.predict_logits(PROBE).astype(np.float64))), positive,
                               rtol=1e-6)


def test_result_row_takes_a_row_of_predict_proba(fitted):
    _, loaded = fitted
    for text, row in zip(PROBE, loaded.predict_proba(PROBE), strict=True):
        result = result_row(row, loaded.class_names)
        assert result["label"] == int(loaded.predict([text])[0])
        assert result["probability"] == round(float(row[1] if loaded.binary else row.max()), 6)
    with pytest.raises(ValueError, match="probabilities for"):
        result_row([0.3, 0.7], ("a", "b", "c"))
