"""The NB-weighted n-gram logistic regression family."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

from reviewsense.export import load_model, save_model
from reviewsense.models.nblinear import NBLinearParams, NBLinearPredictor, fit, nb_ratio, platt
from reviewsense.text.ngrams import NgramVectorizer


def dense_coef(model: NBLinearPredictor) -> np.ndarray:
    """The model's weights as one dense vector (or ``(features, K)`` matrix) over every feature column."""
    tensors = model.tensors()
    coef = np.zeros((model.vectorizer.n_features, *tensors["coef_value"].shape[1:]), dtype=np.float32)
    coef[tensors["coef_index"]] = tensors["coef_value"]
    return coef


@pytest.fixture(scope="module")
def model(sentiment_corpus) -> NBLinearPredictor:
    return fit(sentiment_corpus(400, 0), sentiment_corpus(200, 1), NBLinearParams(hash_bits=16))[0]


def test_validation_logits_come_from_the_model_that_did_not_see_validation(sentiment_corpus):
    train, validation = sentiment_corpus(400, 0), sentiment_corpus(200, 1)
    refit, held_out = fit(train, validation, NBLinearParams(hash_bits=16, refit=True))
    plain, held_out_plain = fit(train, validation, NBLinearParams(hash_bits=16, refit=False))
    assert held_out_plain is plain
    np.testing.assert_allclose(held_out.predict_logits(validation.texts), plain.predict_logits(validation.texts),
                               rtol=1e-4, atol=1e-4)
    # the refit saw the validation labels: its weights differ
    assert not np.allclose(dense_coef(refit), dense_coef(plain))


def test_nb_ratio_sign_follows_the_class():
    vec = NgramVectorizer(ngrams=1, hash_bits=8).adapt(["good", "bad"])
    features = vec.transform(["good good", "good", "bad"]).sign()
    ratio = nb_ratio(features, np.array([1, 1, 0]), alpha=1.0)
    good, bad = (vec.vocabulary_.index(w) for w in ("good", "bad"))
    assert ratio[good] > 0 > ratio[bad]


def test_platt_recovers_a_known_sigmoid():
    rng = np.random.default_rng(0)
    scores = rng.normal(0, 3, 20_000)
    labels = (rng.random(20_000) < 1 / (1 + np.exp(-(0.5 * scores + 1.0)))).astype(int)
    slope, offset = platt(scores, labels)
    assert slope == pytest.approx(0.5, abs=0.05)
    assert offset == pytest.approx(1.0, abs=0.1)


def test_learns_the_toy_task(model, sentiment_corpus):
    test = sentiment_corpus(300, 2)
    accuracy = (model.predict(test.texts) == test.labels).mean()
    assert accuracy > 0.8
    great, awful = model.positive_proba(["a great and wonderful film", "an awful boring film"])
    assert great > 0.5 > awful


def test_export_round_trip_needs_no_torch(model, tmp_path):
    save_model(model, tmp_path / "model")
    texts = ["loved it", "dull plot", ""]
    np.testing.assert_allclose(load_model(tmp_path / "model").predict_proba(texts), model.predict_proba(texts),
                               atol=1e-6)
    code = ("import sys, reviewsense; m = reviewsense.load(sys.argv[1]); m.predict_proba(['great']); "
            "print('torch' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model")], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "False"


def test_tampered_vectorizer_kind_is_refused(model, tmp_path):
    from reviewsense.errors import ModelFileError
    from reviewsense.text.vectorizer import TextVectorizer

    with pytest.raises(ModelFileError, match="n-gram vectorizer"):
        NBLinearPredictor.from_tensors(TextVectorizer().adapt(["a"]), model.config, model.tensors(), ("n", "p"))


def test_spans_of_the_training_texts_join_the_fit_at_their_weight(sentiment_corpus):
    train, validation = sentiment_corpus(300, 0), sentiment_corpus(100, 1)
    plain, _ = fit(train, validation, NBLinearParams(hash_bits=14, span_weight=0.0))
    light, _ = fit(train, validation, NBLinearParams(hash_bits=14, span_weight=0.05))
    heavy, _ = fit(train, validation, NBLinearParams(hash_bits=14, span_weight=1.0))
    change = [float(np.abs(dense_coef(m) - dense_coef(plain)).sum()) for m in (light, heavy)]
    assert 0 < change[0] < change[1]
    # settings saved as JSON (a list of windows) fit the same model again
    again, _ = fit(train, validation, NBLinearParams(**{**light.config, "span_windows": [1, 3, 8, 20]}))
    np.testing.assert_array_equal(dense_coef(again), dense_coef(light))


def test_an_unfinished_fit_is_one_note_not_python_warnings(sentiment_corpus, monkeypatch, capsys, recwarn):
    monkeypatch.setenv("REVIEWSENSE_QUIET", "0")
    fit(sentiment_corpus(200, 0), sentiment_corpus(100, 1), NBLinearParams(hash_bits=12, max_iter=1, tol=1e-9,
                                                                           refit=False))
    assert "1 of 1 logistic regression(s) stopped at max_iter 1" in capsys.readouterr().err
    assert not [w for w in recwarn if "converge" in str(w.message)]


# -- only the kept columns are held: in memory, in pickles ----------------------------------------


def many_classes(n: int, classes: int, seed: int = 0) -> tuple[list[str], list[str]]:
    """Short texts of ``classes`` classes: filler words and two words of the text's class."""
    rng = np.random.default_rng(seed)
    filler = [f"w{i}" for i in range(300)]
    labels = rng.integers(0, classes, n)
    texts = [" ".join([*rng.choice(filler, rng.integers(3, 12)), *[f"c{y}x{rng.integers(3)}" for _ in range(2)]])
             for y in labels]
    return texts, [f"class {y}" for y in labels]


def array_bytes(obj, seen=None) -> int:
    """The bytes of every numpy array reachable from ``obj`` (attributes, dicts, lists, tuples)."""
    seen = set() if seen is None else seen
    if id(obj) in seen:
        return 0
    seen.add(id(obj))
    if isinstance(obj, np.ndarray):
        return obj.nbytes
    if isinstance(obj, dict):
        return sum(array_bytes(v, seen) for v in obj.values())
    if isinstance(obj, list | tuple):
        return sum(array_bytes(v, seen) for v in obj)
    if hasattr(obj, "__dict__"):
        return array_bytes(vars(obj), seen)
    return 0


@pytest.mark.parametrize("case", ["two classes", "binary features", "three classes"])
def test_a_pickled_estimator_is_about_as_small_as_its_export(case, sentiment_corpus, tmp_path):
    """The default 2**24 hashed buckets: the pickle holds the columns with a weight, not a
    dense vector of them (64 MB); a pickle round trip and save/load predict the same."""
    import pickle

    from reviewsense import NBLinearClassifier

    data = sentiment_corpus(600, 0)
    texts, labels = list(data.texts), data.labels.tolist()
    if case == "three classes":
        labels = [y if i % 3 else 2 for i, y in enumerate(labels)]
    model = NBLinearClassifier(binary=case == "binary features").fit(texts, labels)
    test = list(sentiment_corpus(200, 1).texts) + ["", "great", "an unknown word"]
    expected = model.predict_proba(test)  # the lookup is built now: it must not be pickled either
    assert model.predictor_.vectorizer.n_features > 1 << 24
    blob = pickle.dumps(model)
    export = sum(f.stat().st_size for f in model.save(tmp_path / "model").iterdir())
    assert len(blob) < 2 * export < 1_000_000
    np.testing.assert_array_equal(pickle.loads(blob).predict_proba(test), expected)
    np.testing.assert_array_equal(NBLinearClassifier.load(tmp_path / "model").predict_proba(test), expected)
    np.testing.assert_array_equal(load_model(tmp_path / "model").predict_proba(test), expected)


def test_many_classes_fit_and_hold_only_their_kept_columns():
    """50 classes, one weight vector each: neither the fit nor the fitted model holds a
    vector as long as the 2**20 hashed buckets per class (that would be 50 × 4 MB)."""
    import tracemalloc

    from reviewsense import NBLinearClassifier

    texts, labels = many_classes(1000, 50)
    NBLinearClassifier(hash_bits=8).fit(texts[:300], labels[:300])  # imports and compilations, not measured
    tracemalloc.start()
    try:
        model = NBLinearClassifier(hash_bits=20).fit(texts, labels)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    predictor = model.predictor_
    n_features, classes = predictor.vectorizer.n_features, 50
    kept = len(predictor.tensors()["coef_index"])
    assert 0 < kept < 10_000 and predictor.tensors()["coef_value"].shape == (kept, classes)
    # the fit: one count per column to find those kept (8 bytes each), never one vector per class
    assert peak < 16 * n_features < classes * 4 * n_features / 10
    # the model: the kept columns and their weights (4 bytes each, per class), calibrations;
    # and, since it predicted (the length calibration), the lookup column → row: 3/16 of a
    # byte per column, where a dense map would take 4 bytes
    lookup = predictor._kept.lookup_nbytes
    held = array_bytes({k: v for k, v in vars(predictor).items() if k != "vectorizer"})
    assert 0 < lookup <= n_features * 3 // 16 + 16
    assert held - lookup < 4 * kept * (classes + 2) + 100_000
    assert (model.predict(texts[:200]) == np.array(labels[:200])).mean() > 0.9


def _dense_tensors(model: NBLinearPredictor) -> dict[str, np.ndarray]:
    """The model's tensors as reviewsense 0.1.0 saved them (format 1): one dense ``coef``."""
    tensors = model.tensors()
    return {"coef": dense_coef(model), "intercept": tensors["intercept"], "calibration": tensors["calibration"]}


def test_dense_coefficients_of_old_exports_predict_the_same(model):
    texts = ["loved it", "dull plot", "", "a great and wonderful film"]
    old = NBLinearPredictor.from_tensors(model.vectorizer, model.config, _dense_tensors(model), model.class_names)
    np.testing.assert_array_equal(old.predict_logits(texts), model.predict_logits(texts))
    for key in ("coef_index", "coef_value"):
        np.testing.assert_array_equal(old.tensors()[key], model.tensors()[key])


def test_unsorted_and_repeated_columns_of_a_file_read_as_a_dense_assignment(model):
    """A hand-written file may list columns in any order, and a column twice: the last value
    counts (as ``coef[index] = value`` did), zero weights and column 0 are dropped."""
    tensors = model.tensors()
    index, value = tensors["coef_index"], tensors["coef_value"]
    order = np.random.default_rng(0).permutation(len(index))
    shuffled = {**tensors, "coef_index": np.r_[index[order], index[5], 0, index[7]].astype(np.int64),
                "coef_value": np.r_[value[order], 9.0, 3.0, 0.0].astype(np.float32)}
    loaded = NBLinearPredictor.from_tensors(model.vectorizer, model.config, shuffled, model.class_names)
    expected = dense_coef(model)
    expected[[index[5], index[7]]] = [9.0, 0.0]
    np.testing.assert_array_equal(dense_coef(loaded), expected)
    assert loaded.tensors()["coef_index"][0] > 0 and np.all(np.diff(loaded.tensors()["coef_index"]) > 0)
    texts = ["loved it", "dull plot", "", "the film was great"]
    dense = {**_dense_tensors(model), "coef": expected}
    reference = NBLinearPredictor.from_tensors(model.vectorizer, model.config, dense, model.class_names)
    np.testing.assert_array_equal(loaded.predict_logits(texts), reference.predict_logits(texts))
