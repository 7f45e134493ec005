"""The PyTorch loop on its own: ragged batches, evaluate_module, fit's callbacks."""

from __future__ import annotations

import numpy as np
import pytest

from reviewsense.models.seed import build_module
from reviewsense.text.vectorizer import TextVectorizer
from reviewsense.training.history import EarlyStopping
from reviewsense.training.torch_loop import Callback, Features, FitOptions, Ragged, evaluate_module, fit

torch = pytest.importorskip("torch")


def _ragged(texts, labels, vectorizer):
    ids, offsets = vectorizer.encode_ragged(texts)
    return Ragged(ids, offsets, np.asarray(labels, dtype=np.int8))


def test_ragged_batch_selects_texts_and_restarts_offsets():
    data = Ragged(np.array([5, 6, 7, 8, 9, 10], np.int32), np.array([0, 2, 2, 5, 6]), np.array([1, 0, 1, 0]))
    assert len(data) == 4
    (flat, offsets), labels = data.batch(np.array([3, 0, 1]))
    assert flat.tolist() == [10, 5, 6]
    assert offsets.tolist() == [0, 1, 3]
    assert labels.tolist() == [0, 1, 0]


def test_features_batch_selects_rows_as_float32():
    data = Features(np.arange(8, dtype=np.float64).reshape(4, 2), np.array([1, 0, 1, 0]))
    (rows,), labels = data.batch(np.array([2, 0]))
    assert rows.dtype == np.float32
    assert rows.tolist() == [[4, 5], [0, 1]]
    assert labels.tolist() == [1, 1]


def test_evaluate_module_loss_and_accuracy(toy_corpus):
    texts, labels = toy_corpus(40)
    v = TextVectorizer().adapt(texts)
    data = _ragged(texts, labels, v)
    torch.manual_seed(0)
    module = build_module(v.vocabulary_size, 4, 3)
    loss, accuracy, logits = evaluate_module(module, data, batch_size=7)
    assert logits.shape == (40,)
    z, y = torch.from_numpy(logits), torch.tensor(labels, dtype=torch.float32)
    assert loss == pytest.approx(float(torch.nn.functional.binary_cross_entropy_with_logits(z, y)), abs=1e-6)
    assert accuracy == pytest.approx(float(((logits > 0) == np.array(labels)).mean()))


def test_fit_reports_every_epoch_and_returns_an_eval_mode_module(toy_corpus):
    texts, labels = toy_corpus(80)
    v = TextVectorizer().adapt(texts[:60])
    train, validation = _ragged(texts[:60], labels[:60], v), _ragged(texts[60:], labels[60:], v)
    seen = []

    class Record(Callback):
        def on_epoch_end(self, loop, epoch, logs):
            seen.append((epoch, dict(logs)))
            logs["val_error"] = 1 - logs["val_accuracy"]  # a metric of the user's own joins the History

    torch.manual_seed(0)
    module = build_module(v.vocabulary_size, 8, 4)
    history = fit(module, train, validation, FitOptions(epochs=4, batch_size=16, learning_rate=0.01, threads=1,
                                                        callbacks=[Record()]))
    assert [e for e, _ in seen] == [1, 2, 3, 4]
    assert history.history["val_error"] == pytest.approx([1 - a for a in history.history["val_accuracy"]])
    assert [v["val_loss"] for _, v in seen] == history.history["val_loss"]
    assert not module.training
    assert history.stopped_epoch is None
    assert all(0 <= a <= 1 for a in history.history["accuracy"] + history.history["val_accuracy"])
    # the reported validation numbers are those of the returned module (no early stopping)
    loss, accuracy, _ = evaluate_module(module, validation)
    assert loss == pytest.approx(history.history["val_loss"][-1], abs=1e-6)
    assert accuracy == history.history["val_accuracy"][-1]


def test_fit_without_restore_keeps_the_last_weights(toy_corpus):
    texts, labels = toy_corpus(60)
    rng = np.random.default_rng(0)
    noisy = rng.integers(0, 2, size=60)  # random labels: validation loss soon gets worse
    v = TextVectorizer().adapt(texts[:30])
    train, validation = _ragged(texts[:30], noisy[:30], v), _ragged(texts[30:], noisy[30:], v)
    torch.manual_seed(0)
    module = build_module(v.vocabulary_size, 8, 8)
    stopper = EarlyStopping(patience=1, restore_best_weights=False)
    history = fit(module, train, validation,
                  FitOptions(epochs=50, batch_size=8, learning_rate=0.05, threads=1, early_stopping=stopper))
    assert history.stopped_epoch is not None and history.stopped_epoch < 50
    loss, _, _ = evaluate_module(module, validation)
    assert loss == pytest.approx(history.history["val_loss"][-1], abs=1e-6)


def test_one_stopper_for_two_fits_starts_afresh_each_time(toy_corpus):
    texts, labels = toy_corpus(60)
    v = TextVectorizer().adapt(texts[:30])
    train, validation = _ragged(texts[:30], np.array(labels[:30]), v), _ragged(texts[30:], np.array(labels[30:]), v)
    stopper = EarlyStopping(patience=2)
    options = FitOptions(epochs=3, batch_size=8, learning_rate=0.05, threads=1, early_stopping=stopper)
    torch.manual_seed(0)
    fit(build_module(v.vocabulary_size, 8, 8), train, validation, options)
    stopper.best, stopper.wait = -1.0, 1  # as if an earlier fit had reached a loss no fit can beat
    torch.manual_seed(0)
    history = fit(build_module(v.vocabulary_size, 8, 8), train, validation, options)
    assert history.best_epoch >= 1 and stopper.best == min(history.history["val_loss"])
    assert history.stopped_epoch is None  # 3 epochs, learning: the second fit is not stopped by the first's state


def test_gradient_accumulation_trains_the_model_of_the_whole_batch(toy_corpus):
    """Micro-batches whose losses are weighted by their share of the batch add up to the batch's
    gradient: the same weights as without accumulation (row weights included)."""
    texts, labels = toy_corpus(90)
    v = TextVectorizer().adapt(texts)
    train = _ragged(texts[:70], labels[:70], v)
    train.weights = np.random.default_rng(0).uniform(0.5, 2.0, len(train))
    validation = _ragged(texts[70:], labels[70:], v)

    def weights(accumulation: int) -> dict:
        torch.manual_seed(0)
        net = build_module(v.vocabulary_size, 8, 4)
        fit(net, train, validation, FitOptions(epochs=3, batch_size=16, learning_rate=0.01, threads=1, progress=False,
                                               accumulation=accumulation))
        return {k: t.detach().numpy().copy() for k, t in net.state_dict().items()}

    whole, accumulated = weights(1), weights(4)
    for name, value in whole.items():
        np.testing.assert_allclose(accumulated[name], value, rtol=1e-5, atol=1e-6, err_msg=name)


def test_token_batches_pad_to_their_longest_text_and_bucket_by_length():
    from reviewsense.training.torch_loop import Tokens

    rows = [np.arange(n) + 1 for n in (3, 9, 1, 4, 8, 2, 7, 5)]
    data = Tokens(rows, np.arange(8) % 2, pad_id=0, bucket=2)
    (ids, mask), labels = data.batch(np.array([2, 0]))
    assert ids.tolist() == [[1, 0, 0], [1, 2, 3]] and mask.tolist() == [[1, 0, 0], [1, 1, 1]]
    order = data.epoch_order(np.random.default_rng(0), batch_size=2)
    assert sorted(order.tolist()) == list(range(8))  # every text once
    # each bucket of 2 batches is sorted by length: a batch pairs neighbours in length
    lengths = data.lengths[order].reshape(-1, 2)
    spread = np.abs(lengths[:, 0] - lengths[:, 1]).mean()
    random_spread = np.abs(np.subtract.outer(data.lengths, data.lengths)).mean()
    assert spread < random_spread
    assert data.eval_order().tolist() == np.argsort(data.lengths, kind="stable").tolist()
