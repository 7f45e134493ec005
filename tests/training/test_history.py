"""History (Keras-style metrics per epoch) and the EarlyStopping rule."""

from __future__ import annotations

import csv
import io
import json

import pytest

from reviewsense.training.history import KEYS, EarlyStopping, History


def _history():
    h = History()
    h.append(loss=0.7, accuracy=0.5, val_loss=0.69, val_accuracy=0.55)
    h.append(loss=0.4, accuracy=0.8, val_loss=0.5, val_accuracy=0.75)
    h.best_epoch, h.stopped_epoch = 2, None
    return h


def test_new_history_is_empty():
    h = History()
    assert h.history == {} and h.epochs == 0


def test_any_metric_is_recorded_and_every_epoch_gives_the_same_ones():
    h = History()
    h.append(**dict.fromkeys(KEYS, 0.5), macro_f1=0.4)
    assert list(h.history) == [*KEYS, "macro_f1"] and h.epochs == 1
    with pytest.raises(ValueError, match="the metrics"):
        h.append(loss=1.0, accuracy=0.5, val_loss=1.0, val_accuracy=0.5)
    assert h.epochs == 1
    assert History.from_dict(h.to_dict()) == h
    assert h.to_csv().splitlines()[0] == "epoch,loss,accuracy,val_loss,val_accuracy,macro_f1"


def test_dict_round_trip_through_json():
    h = _history()
    again = History.from_dict(json.loads(json.dumps(h.to_dict())))
    assert again == h
    assert h.to_dict()["epochs"] == 2


def test_csv_has_one_row_per_epoch():
    rows = list(csv.reader(io.StringIO(_history().to_csv())))
    assert rows[0] == ["epoch", "loss", "accuracy", "val_loss", "val_accuracy"]
    assert rows[1:] == [["1", "0.700000", "0.500000", "0.690000", "0.550000"],
                        ["2", "0.400000", "0.800000", "0.500000", "0.750000"]]


def test_early_stopping_waits_patience_epochs_without_improvement():
    stop = EarlyStopping(patience=2)
    assert stop.update(1, 0.9) == (True, False)
    assert stop.update(2, 0.8) == (True, False)
    assert stop.update(3, 0.85) == (False, False)
    assert stop.update(4, 0.7) == (True, False)  # an improvement resets the wait
    assert stop.update(5, 0.7) == (False, False)  # equal is not better
    assert stop.update(6, 0.75) == (False, True)
    assert (stop.best, stop.best_epoch) == (0.7, 4)


def test_early_stopping_min_delta():
    stop = EarlyStopping(patience=1, min_delta=0.05)
    assert stop.update(1, 1.0) == (True, False)
    assert stop.update(2, 0.97) == (False, True)  # improved by less than min_delta
    assert stop.best_epoch == 1
