"""The scikit-learn contract, run over every registered family's estimator: what a scikit-learn
maintainer tries first (check_estimator and the API checks that apply to text input, clone,
refit determinism, pickle, Pipeline, cross_val_score, GridSearchCV, CalibratedClassifierCV,
bad targets, sample weights, one-column DataFrame input, save/load in a fresh process), and
the CLI and the estimator giving the same probabilities for the same data, settings and seed."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.calibration import CalibratedClassifierCV
from sklearn.exceptions import NotFittedError, SkipTestWarning
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer
from sklearn.utils import estimator_checks as checks

from reviewsense.errors import ConfigError, DataError
from reviewsense.estimators import StackedClassifier, estimator_class
from reviewsense.models import sentence

# Small and fast settings per family (what each test fits); the sentence head reads a stand-in encoder.
FAST = {
    "nblinear": {"hash_bits": 12, "span_weight": 0.0},
    "seed": {"embedding": "scratch", "embedding_dim": 8, "max_tokens": 500, "epochs": 4, "batch_size": 16,
             "learning_rate": 0.02, "device": "cpu"},
    "cnn": {"embedding": "scratch", "embedding_dim": 8, "filters": 4, "max_length": 20, "epochs": 2, "batch_size": 16,
            "device": "cpu"},
    "sentence": {"epochs": 4, "batch_size": 16, "learning_rate": 0.02, "device": "cpu"},
    "transformer": {"epochs": 2, "batch_size": 16, "learning_rate": 0.002, "warmup": 0.0, "max_length": 16,
                    "device": "cpu"},  # + the tiny random encoder of tests/tiny_encoder.py
}
FAMILIES = list(FAST)
_ENCODER: list[str] = []


def tiny_encoder() -> str:
    """A tiny random BERT folder, written once per session (the transformer family fine-tunes it)."""
    if not _ENCODER:
        pytest.importorskip("transformers")
        import tempfile

        from tiny_encoder import write_tiny_encoder

        folder = Path(tempfile.mkdtemp(prefix="tiny-encoder-")) / "bert"
        _ENCODER.append(str(write_tiny_encoder(folder, [*WORDS, "the", "a", "story", "pos", "neg"])))
    return _ENCODER[0]
WORDS = ("great", "awful", "film", "plot")


class StandInEncoder:
    """Counts four words: a deterministic stand-in for a sentence-transformers model."""

    def __init__(self, spec: str, batch_size: int = 64) -> None:
        self.spec = self.path = spec

    def encode(self, texts, cache: bool = True) -> np.ndarray:
        return np.array([[text.split().count(w) for w in WORDS] for text in texts], dtype=np.float32)


@pytest.fixture(autouse=True)
def stand_in_encoder(monkeypatch):
    monkeypatch.setattr(sentence, "SentenceEncoder", StandInEncoder)


def make(name: str, **more):
    own = {"encoder": tiny_encoder()} if name == "transformer" else {}
    return estimator_class(name)(**{**FAST[name], **own, "verbose": False, "n_jobs": 1, **more})


@pytest.fixture(scope="module")
def corpus():
    rng = np.random.default_rng(5)
    labels = rng.integers(0, 2, 160)
    texts = [" ".join(rng.permutation(["great" if y else "awful", "film", "plot", "the", "a", "story"]).tolist())
             for y in labels]
    return texts, np.where(labels == 1, "pos", "neg")


@pytest.mark.parametrize("name", FAMILIES)
def test_check_estimator_passes(name):
    """check_estimator knows from the tags that the input is text (its numeric checks do not
    apply and are skipped); the API checks that need no data run one by one."""
    estimator = make(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", SkipTestWarning)
        checks.check_estimator(estimator)
    tags = estimator.__sklearn_tags__()
    assert tags.input_tags.string and not tags.input_tags.two_d_array and tags.target_tags.required
    for check in (checks.check_no_attributes_set_in_init, checks.check_parameters_default_constructible,
                  checks.check_get_params_invariance, checks.check_set_params, checks.check_estimator_repr,
                  checks.check_estimator_cloneable, checks.check_estimator_tags_renamed, checks.check_valid_tag_types):
        check(type(estimator).__name__, estimator)


@pytest.mark.parametrize("name", FAMILIES)
def test_clone_refit_pickle_and_dataframe_input(name, corpus):
    texts, labels = corpus
    model = make(name, random_state=3)
    with pytest.raises(NotFittedError):
        model.predict_proba(texts[:2])
    fitted = model.fit(texts, labels)
    assert fitted is model and model.n_features_in_ == 1 and model.classes_.tolist() == ["neg", "pos"]
    proba = model.predict_proba(texts[:20])
    assert proba.shape == (20, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    again = clone(model).fit(texts, labels)  # same data, settings and seed: the same model
    np.testing.assert_allclose(again.predict_proba(texts[:20]), proba, atol=1e-6)
    back = pickle.loads(pickle.dumps(model))
    np.testing.assert_array_equal(back.predict_proba(texts[:20]), proba)
    frame = pd.DataFrame({"review": texts})
    np.testing.assert_allclose(model.predict_proba(frame[:20]), proba, atol=1e-7)
    np.testing.assert_allclose(clone(model).fit(frame, pd.Series(labels)).predict_proba(texts[:20]), proba,
                               atol=1e-6)
    with pytest.raises(DataError, match="columns"):
        model.predict_proba(pd.DataFrame({"a": texts[:2], "b": texts[:2]}))


@pytest.mark.parametrize("name", FAMILIES)
def test_bad_targets_are_refused_in_one_line(name, corpus):
    texts, labels = corpus
    model = make(name)
    n = len(texts)
    bad = {
        "continuous": np.linspace(0, 1, n),
        "infinite": np.r_[np.zeros(n - 1), np.inf],
        "None": np.array([*labels[:-1], None], dtype=object),
        "NaN": np.array([*labels[:-1], np.nan], dtype=object),
        "pd.NA": pd.array([*labels[:-1], pd.NA], dtype="string"),
        "mixed": np.array([*labels[:-1], 3], dtype=object),
        "one class": np.full(n, "pos"),
    }
    for what, y in bad.items():
        with pytest.raises(DataError) as error:
            clone(model).fit(texts, y)
        assert "\n" not in str(error.value), what
    with pytest.raises(DataError, match="one label per text"):
        clone(model).fit(texts, labels[:-1])


@pytest.mark.parametrize("name", FAMILIES)
def test_sample_weight_and_class_weight_change_the_fit(name, corpus):
    texts, labels = corpus
    plain = make(name).fit(texts, labels).predict_proba(["the film"])[0, 1]
    weights = np.where(labels == "pos", 5.0, 1.0)
    heavier = make(name, length_calibration=False).fit(texts, labels, sample_weight=weights)
    lighter = make(name, length_calibration=False).fit(texts, labels, sample_weight=weights[::-1] * 0 + 1)
    assert heavier.predict_proba(["the film"])[0, 1] > lighter.predict_proba(["the film"])[0, 1]
    assert np.isfinite(plain)
    with pytest.raises(DataError, match="sample_weight"):
        make(name).fit(texts, labels, sample_weight=np.full(len(texts), -1.0))
    rare = np.array(labels)
    rare[np.flatnonzero(rare == "pos")[12:]] = "neg"  # 12 positives against many negatives
    balanced = make(name, class_weight="balanced", length_calibration=False).fit(texts, rare)
    unweighted = make(name, length_calibration=False).fit(texts, rare)
    assert balanced.predict_proba(["the film"])[0, 1] > unweighted.predict_proba(["the film"])[0, 1]
    with pytest.raises(ConfigError, match="class_weight"):
        make(name, class_weight="sometimes").fit(texts, labels)


@pytest.mark.parametrize("name", FAMILIES)
def test_pipeline_cross_validation_grid_search_and_calibration(name, corpus):
    texts, labels = corpus
    enough = {"epochs": 6} if name == "cnn" else {}  # 2 epochs of the tiny CNN are near chance on 80 rows
    pipe = Pipeline([("lower", FunctionTransformer(lambda xs: [x.lower() for x in xs])), ("clf", make(name, **enough))])
    assert cross_val_score(pipe, texts, labels, cv=2).mean() > 0.7
    first = {"nblinear": "clf__min_df", "seed": "clf__hidden_units", "cnn": "clf__filters",
             "sentence": "clf__hidden_units", "transformer": "clf__epochs"}[name]
    search = GridSearchCV(pipe, {first: [1, 2]}, cv=2).fit(texts, labels)
    assert search.best_params_[first] in (1, 2)
    calibrated = CalibratedClassifierCV(make(name), cv=2).fit(texts, labels)
    assert calibrated.predict_proba(texts[:3]).shape == (3, 2)


@pytest.mark.parametrize("name", FAMILIES)
def test_a_class_whose_rows_all_land_in_validation_is_refused_by_name(name):
    """The estimator refuses it as the CLI does, naming the class. Held out in its share (the
    split is stratified), a class of two rows in 60 stays in training at 20 %; at 80 % its 1.6
    rows round up to both."""
    texts = [f"text {i} {'great' if i % 2 else 'awful'}" for i in range(60)]
    labels = np.array(["a", "b"] * 29 + ["c", "c"])
    with pytest.raises(DataError, match="no training row of class 'c'"):
        make(name, validation_size=0.8).fit(texts, labels)
    with pytest.raises(DataError, match=r"validation labels \['zzz'\] are not among the classes"):
        make(name).fit(texts, labels, validation_data=(["x"], ["zzz"]))


def test_save_and_load_in_a_fresh_process(tmp_path, corpus):
    texts, labels = corpus
    model = make("nblinear").fit(texts, labels)
    model.save(tmp_path / "model")
    code = ("import sys, json; from reviewsense import NBLinearClassifier as C; "
            "m = C.load(sys.argv[1]); print(json.dumps(m.predict_proba(sys.argv[2:]).tolist()))")
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "model"), *texts[:3]], capture_output=True,
                         text=True, timeout=120, check=True).stdout
    np.testing.assert_allclose(json.loads(out), model.predict_proba(texts[:3]), atol=1e-6)


# -- one training path ---------------------------------------------------------------------------
CLI_FLAGS = {
    "nblinear": ["--hash-bits", "12", "--span-weight", "0"],
    "seed": ["--embedding", "scratch", "--embedding-dim", "8", "--max-tokens", "500", "--epochs", "3",
             "--batch-size", "16", "--learning-rate", "0.02", "--device", "cpu"],
    "cnn": ["--embedding", "scratch", "--embedding-dim", "8", "--filters", "4", "--max-length", "20", "--epochs", "2",
            "--batch-size", "16", "--device", "cpu"],
    "sentence": ["--epochs", "3", "--batch-size", "16", "--learning-rate", "0.02", "--device", "cpu"],
    "transformer": ["--epochs", "2", "--batch-size", "16", "--learning-rate", "0.002", "--warmup", "0",
                    "--max-length", "16", "--device", "cpu"],
}


@pytest.mark.parametrize("name", [*FAMILIES, "preset"])
def test_the_cli_and_the_estimator_give_the_same_probabilities(name, tmp_path, corpus):
    """``reviewsense train`` builds the family's estimator and calls its fit: with the same split,
    settings and seed the two models are the same."""
    from reviewsense.cli import main
    from reviewsense.data.dataset import Dataset, train_validation_split
    from reviewsense.export import load_model

    texts, labels = corpus
    pd.DataFrame({"text": texts, "label": labels}).to_csv(tmp_path / "train.csv", index=False)
    pd.DataFrame({"text": texts[:20], "label": labels[:20]}).to_csv(tmp_path / "test.csv", index=False)
    flags = (["--preset", "best", *CLI_FLAGS["nblinear"], *CLI_FLAGS["cnn"]] if name == "preset"
             else ["--model", name, *CLI_FLAGS[name]])
    if name == "transformer":
        flags += ["--encoder", tiny_encoder()]
    run = tmp_path / "run"
    assert main(["train", "--data", str(tmp_path / "train.csv"), "--test-data", str(tmp_path / "test.csv"),
                 "--classes", "neg,pos", "--random-split", "--validation-size", "0.25", "--seed", "4",
                 "--threads", "1", "--run-dir", str(run), *flags]) == 0
    from_cli = load_model(run / "model").predict_proba(texts[:30])

    data = Dataset(texts, (np.asarray(labels) == "pos").astype(np.int16), class_names=("neg", "pos"))
    train, validation = train_validation_split(data, 0.25, seed=4, by_group=False, stratify=True)  # the CLI's default
    if name == "preset":
        estimator = StackedClassifier(make("nblinear", random_state=4), make("cnn", random_state=4), random_state=4,
                                      n_jobs=1, verbose=False)
        estimator.set_params(network__epochs=2)
    else:
        estimator = make(name, random_state=4)
        if name in ("seed", "sentence"):
            estimator.set_params(epochs=3)
    estimator.fit(train.texts, np.array(train.class_names)[train.labels],
                  validation_data=(validation.texts, np.array(validation.class_names)[validation.labels]))
    np.testing.assert_allclose(estimator.predict_proba(texts[:30]), from_cli, atol=1e-5)


def test_n_jobs_sets_the_threads_of_fit_and_predict_without_the_environment(corpus, monkeypatch):
    """``n_jobs`` is a parameter, not a process-wide switch: a model with n_jobs=1 scores on one
    thread whatever $REVIEWSENSE_THREADS says (a Spark executor runs one per task)."""
    from reviewsense.progress import threads
    from reviewsense.text import ngrams

    texts, labels = corpus
    seen: list[int] = []
    monkeypatch.setattr(ngrams, "workers", lambda: seen.append(threads()) or threads())
    monkeypatch.setenv("REVIEWSENSE_THREADS", "7")
    model = make("nblinear").fit(texts, labels)  # n_jobs=1
    model.predict_proba(texts * 30)  # 4,800 texts: enough to be split between threads
    assert seen and set(seen) == {1}
    seen.clear()
    model.set_params(n_jobs=None)
    model.predictor_.n_jobs = None
    model.predict_proba(texts * 30)
    assert set(seen) == {7}
    with pytest.raises(ConfigError, match="n_jobs"):
        make("nblinear", n_jobs=None).set_params(n_jobs=0).fit(texts, labels)
