"""binary_metrics on hand-made logits, evaluate() on a predictor, and the plots."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.special import expit
from sklearn.metrics import log_loss

from reviewsense.data.dataset import Dataset
from reviewsense.errors import ConfigError
from reviewsense.evaluation.metrics import binary_metrics, check_classes, evaluate
from reviewsense.evaluation.plots import plot_history
from reviewsense.training.history import History

#            tp    tp    fn    tn    tn    fp    tn    tp
LABELS = np.array([1, 1, 1, 0, 0, 0, 0, 1])
LOGITS = np.array([2.0, 0.5, -1.0, -3.0, -0.2, 1.5, -0.1, 4.0])


def test_binary_metrics_by_hand():
    m = binary_metrics(LABELS, LOGITS)
    tp, fp, fn, tn = 3, 1, 1, 3
    assert m["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert m["accuracy"] == pytest.approx(6 / 8)
    assert m["precision"] == pytest.approx(round(tp / (tp + fp), 6))
    assert m["recall"] == pytest.approx(round(tp / (tp + fn), 6))
    p, r = tp / (tp + fp), tp / (tp + fn)
    assert m["f1"] == pytest.approx(round(2 * p * r / (p + r), 6))
    assert m["count"] == 8
    assert 0.5 < m["roc_auc"] <= 1


def test_loss_is_log_loss_of_the_sigmoid():
    m = binary_metrics(LABELS, LOGITS)
    assert m["loss"] == pytest.approx(log_loss(LABELS, expit(LOGITS)), abs=1e-6)


def test_loss_is_stable_for_extreme_logits():
    m = binary_metrics(np.array([1, 0]), np.array([800.0, -800.0]))
    assert m["loss"] == 0.0 and m["accuracy"] == 1.0
    wrong = binary_metrics(np.array([1, 0]), np.array([-800.0, 800.0]))
    assert wrong["loss"] == pytest.approx(800.0)


def test_logit_zero_counts_as_negative():
    m = binary_metrics(np.array([0, 1]), np.array([0.0, 0.0]))
    assert m["confusion_matrix"] == [[1, 0], [1, 0]]
    assert m["precision"] == 0.0 and m["recall"] == 0.0 and m["f1"] == 0.0


def test_roc_auc_is_none_with_one_class():
    m = binary_metrics(np.array([1, 1, 1]), np.array([0.3, -1.0, 2.0]))
    assert m["roc_auc"] is None
    assert m["confusion_matrix"] == [[0, 0], [1, 2]]


def test_evaluate_scores_raw_texts(trained):
    predictor, _, _, validation = trained
    m = evaluate(predictor, validation)
    assert m["count"] == len(validation)
    assert m["accuracy"] > 0.9
    assert m == binary_metrics(validation.labels, predictor.predict_logits(validation.texts))


def test_evaluate_refuses_unlabelled_data(trained):
    predictor, *_ = trained
    with pytest.raises(ValueError, match="labelled"):
        evaluate(predictor, Dataset(texts=["a", "b"], labels=[-1, -1], name="u"))


def test_plot_history_writes_two_pngs(tmp_path):
    h = History()
    for i in range(3):
        h.append(loss=1.0 / (i + 1), accuracy=0.5 + i / 10, val_loss=0.9 - i / 10, val_accuracy=0.6)
    h.best_epoch = 3
    paths = plot_history(h, tmp_path / "run", title="seed")
    assert [p.name for p in paths] == ["loss.png", "accuracy.png"]
    for p in paths:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["accuracy.png", "loss.png"]


def test_expected_calibration_error_separates_calibrated_from_overconfident():
    from reviewsense.evaluation.metrics import expected_calibration_error

    rng = np.random.default_rng(0)
    p = rng.random(50_000)
    y = (rng.random(50_000) < p).astype(int)  # outcomes drawn with the predicted probability
    assert expected_calibration_error(y, p) < 0.01
    overconfident = np.where(p > 0.5, 0.99, 0.01)
    assert expected_calibration_error(y, overconfident) > 0.2
    assert expected_calibration_error(np.array([1, 0]), np.array([1.0, 0.0])) == 0.0


def test_binary_metrics_reports_ece_and_evaluate_draws_reliability(tmp_path):
    from reviewsense.evaluation.plots import plot_reliability

    metrics = binary_metrics(np.array([1, 0, 1, 0]), np.array([2.0, -2.0, 0.5, 0.1]))
    assert 0 <= metrics["ece"] <= 1
    path = plot_reliability(np.array([1, 0, 1, 0]), np.array([2.0, -2.0, 0.5, 0.1]), tmp_path / "r.png")
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


# -- one class, and the classes of a model ------------------------------------------------------


def test_one_class_negative_only_reports_what_is_defined():
    m = binary_metrics(np.array([0, 0, 0, 0]), np.array([-2.0, -1.0, 0.5, -3.0]), ("bad", "good"))
    assert m["accuracy"] == pytest.approx(0.75)  # the recall of 'bad'
    assert m["confusion_matrix"] == [[3, 1], [0, 0]]
    assert m["predicted_positive"] == pytest.approx(0.25)
    assert m["precision"] == 0.0  # the one positive prediction is wrong: defined
    assert m["recall"] is None and m["f1"] is None and m["roc_auc"] is None
    assert m["undefined"] == ["roc_auc", "recall", "f1"]
    assert m["note"] == ("only one class ('bad') in the data: roc_auc and the recall, f1 of 'good' are undefined "
                         "(null); accuracy is the recall of 'bad'")
    assert m["loss"] > 0 and 0 <= m["ece"] <= 1 and m["count"] == 4


def test_one_class_positive_only_keeps_recall_and_f1():
    m = binary_metrics(np.array([1, 1, 1, 1]), np.array([2.0, 1.0, -0.5, 3.0]))
    assert m["recall"] == pytest.approx(0.75) and m["precision"] == 1.0
    assert m["f1"] == pytest.approx(round(2 * 0.75 / 1.75, 6))
    assert m["undefined"] == ["roc_auc"] and "roc_auc is undefined" in m["note"]


def test_one_class_without_positive_predictions_has_no_precision():
    m = binary_metrics(np.array([0, 0]), np.array([-1.0, -2.0]))
    assert m["accuracy"] == 1.0 and m["predicted_positive"] == 0.0
    assert m["precision"] is None and set(m["undefined"]) == {"roc_auc", "recall", "f1", "precision"}


def test_two_classes_have_no_note():
    m = binary_metrics(LABELS, LOGITS)
    assert "note" not in m and "undefined" not in m
    assert m["predicted_positive"] == pytest.approx(4 / 8)


def test_evaluate_uses_the_predictors_class_names():
    class Constant:
        family = "constant"
        class_names = ("bad", "good")

        def predict_logits(self, texts):
            return np.full(len(texts), -1.0)

    m = evaluate(Constant(), Dataset(["a", "b"], np.array([0, 0])))
    assert "'bad'" in m["note"] and "'good'" in m["note"]


@pytest.mark.parametrize("given, model", [
    (None, ("bad", "good")),
    (["bad", "good"], ("bad", "good")),
    (["bad", "good"], ("negative", "positive")),  # the data's own names for a generic model's classes
    (["neg", "pos"], ("negative", "positive")),
    (["0", "1"], ("negative", "positive")),
    (["terrible", "great"], ("0", "1")),
    (["0", "1"], ("bad", "good")),  # a generic pair in the generic order: 0 = bad, 1 = good
    (["false", "true"], ("bad", "good")),
])
def test_classes_that_agree_with_the_model(given, model):
    check_classes(given, model)


@pytest.mark.parametrize("given, model", [
    (["good", "bad"], ("bad", "good")),  # inverted
    (["terrible", "great"], ("bad", "good")),  # other names than the model's
    (["bad", "fine"], ("bad", "good")),
    (["positive", "negative"], ("negative", "positive")),
    (["pos", "neg"], ("negative", "positive")),  # generic names of the other sides
    (["1", "0"], ("negative", "positive")),
    (["good", "negative"], ("negative", "positive")),
    (["1", "0"], ("bad", "good")),  # a generic pair reversed
    (["0", "1"], ("1", "0")),  # the model's own names in another order
])
def test_classes_that_contradict_the_model_are_refused(given, model):
    with pytest.raises(ConfigError) as info:
        check_classes(given, model)
    message = str(info.value)
    assert f"--classes {','.join(given)}" in message and f"model's classes {','.join(model)}" in message
    assert "\n" not in message


def test_what_cannot_be_measured_is_a_data_error_naming_the_set(trained):
    from reviewsense.errors import DataError

    predictor = trained[0]
    unlabelled = Dataset(texts=["a film", "another"], labels=np.array([-1, -1]), name="unsup")
    with pytest.raises(DataError, match="unsup: evaluation needs labelled data"):
        evaluate(predictor, unlabelled)
    with pytest.raises(DataError, match="no labelled texts"):
        binary_metrics(np.zeros(0), np.zeros(0))


def test_an_unknown_model_family_is_a_config_error(tmp_path):
    from reviewsense.pipeline import TrainConfig, train

    with pytest.raises(ConfigError, match="unknown model family 'zzz'"):
        train(TrainConfig(run_dir=str(tmp_path / "run"), model="zzz"))
