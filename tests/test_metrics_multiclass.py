"""Metrics of K > 2 classes on hand-made logits; the binary dict's macro-F1; by_length and the
reliability plot on (n, K) arrays; --classes of a multiclass model."""

from __future__ import annotations

import json

import numpy as np
import pytest
from scipy.special import softmax
from sklearn.metrics import f1_score, log_loss

from reviewsense.data.dataset import Dataset
from reviewsense.errors import ConfigError, DataError
from reviewsense.evaluation.by_length import by_length, format_table, worst_ece
from reviewsense.evaluation.metrics import (
    binary_metrics,
    check_classes,
    evaluate,
    format_confusion,
    format_per_class,
    is_multiclass,
    multiclass_metrics,
    numeric_classes,
)

NAMES = ("bad", "ok", "good")
# each row: the probabilities the logits stand for (softmax of their logs); the top class, and whether it is right
PROBABILITIES = np.array([
    [0.90, 0.05, 0.05],  # true 0, predicted 0 (confidence 0.90, right)
    [0.28, 0.62, 0.10],  # true 0, predicted 1 (0.62, wrong)
    [0.05, 0.90, 0.05],  # true 1, predicted 1 (0.90, right)
    [0.19, 0.62, 0.19],  # true 1, predicted 1 (0.62, right)
    [0.09, 0.09, 0.82],  # true 2, predicted 2 (0.82, right)
    [0.50, 0.20, 0.30],  # true 2, predicted 0 (0.50, wrong)
])
LABELS = np.array([0, 0, 1, 1, 2, 2])
LOGITS = np.log(PROBABILITIES) + np.array([[0.0], [3.0], [-1.0], [0.5], [2.0], [-7.0]])  # a shift per row: same softmax


def test_accuracy_confusion_and_per_class_by_hand():
    m = multiclass_metrics(LABELS, LOGITS, NAMES)
    assert m["accuracy"] == pytest.approx(round(4 / 6, 6))
    assert m["confusion_matrix"] == [[1, 1, 0],  # rows: true bad, ok, good; columns: predicted
                                     [0, 2, 0],
                                     [1, 0, 1]]
    # bad: tp 1, fp 1, fn 1; ok: tp 2, fp 1, fn 0; good: tp 1, fp 0, fn 1
    expected = {"bad": (1 / 2, 1 / 2, 1 / 2), "ok": (2 / 3, 1.0, 0.8), "good": (1.0, 1 / 2, 2 / 3)}
    assert list(m["per_class"]) == list(NAMES)
    for name, (p, r, f) in expected.items():
        row = m["per_class"][name]
        assert (row["precision"], row["recall"], row["f1"]) == pytest.approx((p, r, f), abs=1e-6)
        assert row["support"] == 2
    assert m["macro_precision"] == pytest.approx((1 / 2 + 2 / 3 + 1) / 3, abs=1e-6)
    assert m["macro_recall"] == pytest.approx((1 / 2 + 1 + 1 / 2) / 3, abs=1e-6)
    assert m["macro_f1"] == pytest.approx((1 / 2 + 0.8 + 2 / 3) / 3, abs=1e-6)
    assert m["count"] == 6
    assert "note" not in m and "absent_classes" not in m
    assert "roc_auc" not in m and is_multiclass(m)


def test_macro_f1_is_sklearns():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 4, 300)
    z = rng.normal(size=(300, 4)) + 1.5 * np.eye(4)[y]  # informative but far from perfect
    m = multiclass_metrics(y, z, ["a", "b", "c", "d"])
    assert m["macro_f1"] == pytest.approx(f1_score(y, z.argmax(1), average="macro"), abs=1e-6)
    assert 0.3 < m["accuracy"] < 0.95
    hand = multiclass_metrics(LABELS, LOGITS, NAMES)
    assert hand["macro_f1"] == pytest.approx(f1_score(LABELS, LOGITS.argmax(1), average="macro"), abs=1e-6)


def test_loss_is_log_loss_of_the_softmax():
    m = multiclass_metrics(LABELS, LOGITS, NAMES)
    by_hand = -np.mean(np.log([0.90, 0.28, 0.90, 0.62, 0.82, 0.30]))
    assert m["loss"] == pytest.approx(by_hand, abs=1e-6)
    assert m["loss"] == pytest.approx(log_loss(LABELS, softmax(LOGITS, axis=1), labels=[0, 1, 2]), abs=1e-6)


def test_loss_is_stable_for_extreme_logits():
    right = multiclass_metrics([0, 2], [[900.0, 0.0, -900.0], [-900.0, 0.0, 900.0]], NAMES)
    assert right["loss"] == 0.0 and right["accuracy"] == 1.0
    wrong = multiclass_metrics([0], [[-900.0, 0.0, 900.0]], NAMES)
    assert wrong["loss"] == pytest.approx(1800.0)


def test_top_label_ece_by_hand():
    # 15 bins of the top probability: 0.90 → bin 13 (2 texts, both right: gap 0.10); 0.62 → bin 9
    # (2 texts, one right: gap 0.12); 0.82 → bin 12 (right: gap 0.18); 0.50 → bin 7 (wrong: gap 0.50)
    m = multiclass_metrics(LABELS, LOGITS, NAMES)
    assert m["ece"] == pytest.approx((2 * 0.10 + 2 * 0.12 + 0.18 + 0.50) / 6, abs=1e-6)
    sure = multiclass_metrics([0, 1, 2], np.log(np.eye(3) * 0.97 + 0.01), NAMES)  # right, at 0.98 each
    assert sure["ece"] == pytest.approx(0.02, abs=1e-6)


def test_mae_with_numeric_class_names():
    # predicted 1 for true 0 (row 1) and 0 for true 2 (row 5); every other row right
    assert multiclass_metrics(LABELS, LOGITS, ["1", "2", "3"])["mae"] == pytest.approx((1 + 2) / 6, abs=1e-6)
    # the classes' numbers, not their positions: |4 - 2| + |2 - 10|
    assert multiclass_metrics(LABELS, LOGITS, ["2", "4", "10"])["mae"] == pytest.approx((2 + 8) / 6, abs=1e-6)
    assert multiclass_metrics(LABELS, LOGITS, [" 1", "2.5", "-3"])["mae"] == pytest.approx(
        (1.5 + abs(1 - (-3))) / 6, abs=1e-6)


def test_no_mae_with_string_class_names():
    assert multiclass_metrics(LABELS, LOGITS, NAMES)["mae"] is None
    assert multiclass_metrics(LABELS, LOGITS, ["1", "2", "many"])["mae"] is None
    assert numeric_classes(["1", "nan", "3"]) is None and numeric_classes(["1", "inf", "3"]) is None
    assert numeric_classes(["1", "2", "10"]).tolist() == [1.0, 2.0, 10.0]


def test_a_class_absent_from_the_data_is_undefined_and_said():
    y = np.array([0, 0, 1, 1])
    pred = np.array([0, 2, 1, 1])  # 'good' is predicted once, but no text is 'good'
    m = multiclass_metrics(y, np.eye(3)[pred] * 4, NAMES)
    good = m["per_class"]["good"]
    assert good == {"precision": 0.0, "recall": None, "f1": None, "support": 0}
    assert m["absent_classes"] == ["good"]
    assert "'good'" in m["note"] and "undefined" in m["note"] and "\n" not in m["note"]
    assert m["macro_f1"] == pytest.approx(f1_score(y, pred, labels=[0, 1], average="macro"), abs=1e-6)
    assert m["macro_recall"] == pytest.approx((0.5 + 1.0) / 2, abs=1e-6)
    assert m["confusion_matrix"] == [[1, 0, 1], [0, 2, 0], [0, 0, 0]]
    never = multiclass_metrics(y, np.eye(3)[[0, 0, 1, 1]] * 4, NAMES)  # 'good' neither in the data nor predicted
    assert never["per_class"]["good"]["precision"] is None and never["macro_f1"] == 1.0


def test_bad_inputs_are_refused():
    with pytest.raises(DataError, match="no labelled texts"):
        multiclass_metrics(np.zeros(0), np.zeros((0, 3)), NAMES)
    with pytest.raises(ValueError, match=r"shape \(6, 4\)"):
        multiclass_metrics(LABELS, LOGITS, ["a", "b", "c", "d"])
    with pytest.raises(DataError, match="class indices 0..2"):
        multiclass_metrics([0, 3], LOGITS[:2], NAMES)


def test_tables_of_the_per_class_metrics_and_the_confusion_matrix():
    m = multiclass_metrics(LABELS, LOGITS, NAMES)
    per_class = format_per_class(m)
    assert "| ok | 0.6667 | 1.0000 | 0.8000 | 2 |" in per_class
    confusion = format_confusion(m).splitlines()
    assert confusion[0] == "| true \\ predicted | bad | ok | good |"
    assert confusion[2:] == ["| bad | 1 | 1 | 0 |", "| ok | 0 | 2 | 0 |", "| good | 1 | 0 | 1 |"]
    absent = multiclass_metrics([0, 1], np.eye(3)[[0, 1]], NAMES)
    assert "| good | n/a | n/a | n/a | 0 |" in format_per_class(absent)


# -- the binary dict: the same keys as before, plus macro-F1 and per class ------------------------

BINARY_LABELS = np.array([1, 1, 1, 0, 0, 0, 0, 1])
BINARY_LOGITS = np.array([2.0, 0.5, -1.0, -3.0, -0.2, 1.5, -0.1, 4.0])
BINARY_KEYS = ["loss", "accuracy", "precision", "recall", "f1", "roc_auc", "ece", "confusion_matrix", "count",
               "predicted_positive"]


def test_binary_metrics_add_macro_f1_and_per_class():
    m = binary_metrics(BINARY_LABELS, BINARY_LOGITS, ("bad", "good"))
    assert list(m) == BINARY_KEYS + ["macro_f1", "per_class"]
    pred = (BINARY_LOGITS > 0).astype(int)
    assert m["macro_f1"] == pytest.approx(f1_score(BINARY_LABELS, pred, average="macro"), abs=1e-6)
    good = m["per_class"]["good"]
    assert (good["precision"], good["recall"], good["f1"], good["support"]) == (m["precision"], m["recall"],
                                                                                m["f1"], 4)
    assert m["per_class"]["bad"] == {"precision": 0.75, "recall": 0.75, "f1": 0.75, "support": 4}
    assert not is_multiclass(m)


def test_binary_one_class_keeps_its_note_and_macro_f1_is_of_the_present_class():
    m = binary_metrics(np.array([0, 0, 0, 0]), np.array([-2.0, -1.0, 0.5, -3.0]), ("bad", "good"))
    assert m["undefined"] == ["roc_auc", "recall", "f1"]
    assert m["note"].startswith("only one class ('bad') in the data")
    assert m["per_class"]["good"] == {"precision": 0.0, "recall": None, "f1": None, "support": 0}
    assert m["macro_f1"] == m["per_class"]["bad"]["f1"] == pytest.approx(round(2 * 0.75 / 1.75, 6))


# -- evaluate, the reliability plot, --classes --------------------------------------------------


class Fixed:
    """A predictor of the given logits for the texts "0", "1", … (their row numbers)."""

    family = "fixed"

    def __init__(self, logits: np.ndarray, class_names) -> None:
        self.logits, self.class_names = np.asarray(logits), tuple(class_names)

    def predict_logits(self, texts):
        return self.logits[[int(t) for t in texts]]


def _data(labels, class_names) -> Dataset:
    return Dataset([str(i) for i in range(len(labels))], np.asarray(labels), class_names=tuple(class_names))


def test_evaluate_dispatches_on_the_shape_of_the_logits(tmp_path):
    plot = tmp_path / "reliability.png"
    m = evaluate(Fixed(LOGITS, NAMES), _data(LABELS, NAMES), reliability_plot=str(plot))
    assert m == multiclass_metrics(LABELS, LOGITS, NAMES)
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    binary = evaluate(Fixed(BINARY_LOGITS, ("bad", "good")), _data(BINARY_LABELS, ("bad", "good")))
    assert binary == binary_metrics(BINARY_LABELS, BINARY_LOGITS, ("bad", "good")) and "roc_auc" in binary
    json.dumps(m)  # JSON-ready: plain ints, floats, None


def test_reliability_plot_of_k_classes_is_top_label(tmp_path, monkeypatch):
    from reviewsense.evaluation import metrics
    from reviewsense.evaluation.plots import plot_reliability

    seen = {}
    real = metrics.reliability

    def spy(labels, probabilities, bins=15):
        seen["labels"], seen["probabilities"] = np.asarray(labels), np.asarray(probabilities)
        return real(labels, probabilities, bins)

    monkeypatch.setattr(metrics, "reliability", spy)
    path = plot_reliability(LABELS, LOGITS, tmp_path / "r.png", title="three classes")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert seen["labels"].tolist() == [1, 0, 1, 1, 1, 0]  # whether the top class was right
    assert seen["probabilities"] == pytest.approx([0.90, 0.62, 0.90, 0.62, 0.82, 0.50])


def test_classes_of_a_multiclass_model_must_be_its_own():
    check_classes(None, NAMES)
    check_classes(list(NAMES), NAMES)
    for given in (["good", "ok", "bad"], ["bad", "ok"], ["bad", "ok", "good", "great"], ["0", "1", "2"],
                  ["negative", "neutral", "positive"]):
        with pytest.raises(ConfigError) as info:
            check_classes(given, NAMES)
        message = str(info.value)
        assert f"--classes {','.join(given)}" in message and "model's classes bad,ok,good" in message
        assert "\n" not in message
    with pytest.raises(ConfigError, match="contradicts"):
        check_classes(["1", "2", "3"], ("bad", "good"))  # three names for a model of two


# -- by length, with probabilities of K classes -------------------------------------------------


def reviews(n: int, seed: int) -> Dataset:
    """Reviews of 7 to 9 sentences (over 50 words: one span of every bucket each), of three classes by turn."""
    rng = np.random.default_rng(seed)
    words = ["the", "film", "plot", "was", "acting", "and", "a", "story", "it", "of", "cast", "scene"]
    texts = [" ".join(" ".join(rng.choice(words, 8)).capitalize() + "." for _ in range(int(rng.integers(7, 10))))
             + f" Review {i}." for i in range(n)]
    return Dataset(texts, np.arange(n) % 3, name="three", class_names=NAMES)


def test_by_length_of_a_constant_k_class_scorer():
    data = reviews(90, 0)
    result = by_length(lambda texts: np.tile([0.5, 0.3, 0.2], (len(texts), 1)), data)
    assert result["reviews"] == 90 and "top-label" in result["note"]
    assert result["buckets"]
    for row in result["buckets"].values():
        assert set(row) == {"count", "mean_words", "accuracy", "ece", "mean_confidence"} and row["count"] == 90
        assert row["accuracy"] == pytest.approx(1 / 3, abs=1e-4)  # always 'bad': right for a third of the spans
        assert row["ece"] == pytest.approx(0.5 - 1 / 3, abs=1e-4)
        assert row["mean_confidence"] == 0.5
    table = format_table(result)
    assert table.splitlines()[0] == "| span | texts | mean words | accuracy | ECE | mean confidence |"
    assert "| full review | 90 |" in table and "ROC-AUC" not in table
    assert worst_ece(result) == pytest.approx(1 / 6, abs=1e-4)


def test_by_length_of_a_scorer_that_knows_the_review():
    data = reviews(60, 1)
    full = dict(zip(data.texts, data.labels.tolist(), strict=True))

    def proba(texts):
        return np.array([np.eye(3)[full[t]] if t in full else [0.2, 0.5, 0.3] for t in texts])

    result = by_length(proba, data)
    assert result["buckets"]["full review"]["accuracy"] == 1.0
    assert result["buckets"]["full review"]["ece"] == 0.0
    assert result["buckets"]["1 word"]["accuracy"] == pytest.approx(1 / 3, abs=1e-4)  # always 'ok'


def test_by_length_refuses_probabilities_of_the_wrong_shape():
    data = reviews(30, 2)
    with pytest.raises(ValueError, match="probabilities"):
        by_length(lambda texts: np.zeros((3, 3)), data)
    with pytest.raises(ValueError, match="probabilities"):
        by_length(lambda texts: np.ones((len(texts), 1)), data)
    with pytest.raises(ValueError, match="2 classes"):
        by_length(lambda texts: np.full((len(texts), 2), 0.5), data)  # labels go up to 2
