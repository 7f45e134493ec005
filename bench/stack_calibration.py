"""How to length-calibrate the stack of ``--preset best``: per member (what reviewsense does) or
over the stacked logit? Log-loss on held-out data.

    python bench/stack_calibration.py [--data PATH] [--train 6000] [--validation 2000] [--test 2000]
                                      [--label-column label|rating] [--members nblinear,cnn]
                                      [--out bench/results/stack_calibration.json]

A seeded sample of IMDB's training reviews is split (by movie) into training and validation
reviews, and a sample of the test reviews is kept apart. The members are trained on the
training reviews and stacked on the validation reviews (``ensemble.fit_family``); then the
length calibration is fitted on spans of the validation reviews (``fit_length_calibration``,
scored by the members that did not see them), in two designs:

- ``per member``: the calibration reads every member's logit, each with its own slope by
  length; it is the stack (the weights are dropped). What reviewsense ships.
- ``stacked logit``: the calibration reads one score, the stacked logit (the stack weights
  fixed on whole validation reviews), with one slope by length.

Reported per design: the mean log-loss on the validation spans (the calibration's own fit
set), on spans of the test reviews and on the whole test reviews, and the number of
parameters; and the stack without a length calibration for reference.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
from scipy.special import log_expit, log_softmax

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import DEFAULT_DATA, ROOT, machine, write_results  # noqa: E402


def log_loss(logits: np.ndarray, labels: np.ndarray) -> float:
    z = np.asarray(logits, dtype=np.float64)
    if z.ndim == 1:
        return float(-(labels * log_expit(z) + (1 - labels) * log_expit(-z)).mean())
    return float(-log_softmax(z, axis=1)[np.arange(len(labels)), labels].mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--train", type=int, default=6000)
    parser.add_argument("--validation", type=int, default=2000)
    parser.add_argument("--test", type=int, default=2000)
    parser.add_argument("--label-column", default="label", choices=("label", "rating"))
    parser.add_argument("--members", default="nblinear,cnn")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default=str(ROOT / "bench/results/stack_calibration.json"))
    args = parser.parse_args()
    os.environ.setdefault("REVIEWSENSE_QUIET", "1")

    from reviewsense.data.dataset import train_validation_split
    from reviewsense.data.imdb import by_rating, read_imdb
    from reviewsense.data.spans import cut_spans
    from reviewsense.models import ensemble
    from reviewsense.models.calibration import fit_length_calibration
    from reviewsense.models.registry import FitJob
    from reviewsense.text.ngrams import count_tokens
    from reviewsense.training.history import EarlyStopping
    from reviewsense.training.torch_loop import FitOptions

    class StackedLogit(ensemble.EnsemblePredictor):
        """The other design: the calibration reads the stacked logit, and the weights stay."""

        @property
        def length_calibration(self):
            return self._length_calibration

        @length_calibration.setter
        def length_calibration(self, calibration) -> None:
            self._length_calibration = calibration

        @property
        def raw_score_count(self) -> int:
            return 1

        def _logits_and_lengths(self, texts):
            return self._logits(texts), count_tokens(texts)

    rng = np.random.default_rng(args.seed)
    data = read_imdb(args.data)
    train_all, test_all = data["train"], data["test"]
    if args.label_column == "rating":
        train_all, test_all = by_rating(train_all), by_rating(test_all)
    train_all = train_all.subset(np.sort(rng.permutation(len(train_all))[: args.train + args.validation]))
    test = test_all.subset(np.sort(rng.permutation(len(test_all))[: args.test]))
    train, validation = train_validation_split(train_all, args.validation, seed=args.seed)
    options = FitOptions(seed=args.seed, early_stopping=EarlyStopping(patience=2))
    started = time.perf_counter()
    fitted = ensemble.fit_family(FitJob(train, validation, options),
                                 ensemble.StackParams(members=tuple(args.members.split(","))))
    fit_seconds = time.perf_counter() - started
    model, held = fitted.predictor, fitted.held_out
    assert isinstance(model, ensemble.EnsemblePredictor) and isinstance(held, ensemble.EnsemblePredictor)
    labelled = np.concatenate([train.labels, validation.labels])
    validation_spans, test_spans = cut_spans(validation, seed=args.seed).data, cut_spans(test, seed=args.seed).data
    rows = [{"design": "no length calibration (the stack)",
             "parameters": len(model.members) + (1 if model.binary else model.n_classes), "validation_spans": None,
             "test_spans": log_loss(model.predict_logits(test_spans.texts), test_spans.labels),
             "test_reviews": log_loss(model.predict_logits(test.texts), test.labels)}]
    for design, cls in (("per member (reviewsense)", ensemble.EnsemblePredictor), ("stacked logit", StackedLogit)):
        h = cls(held.members, held.weights, held.bias, held.class_names)
        m = cls(model.members, model.weights, model.bias, model.class_names)
        calibration = fit_length_calibration(h, validation, labelled, seed=args.seed)
        h.length_calibration = calibration
        m.length_calibration = replace(calibration, empty=m.raw_scores([""])[0][0])
        rows.append({"design": design, "parameters": int(calibration.slope.size + calibration.shift.size),
                     "validation_spans": log_loss(h.predict_logits(validation_spans.texts), validation_spans.labels),
                     "test_spans": log_loss(m.predict_logits(test_spans.texts), test_spans.labels),
                     "test_reviews": log_loss(m.predict_logits(test.texts), test.labels)})
    print(f"| design ({args.label_column}, {args.members}) | parameters | validation spans | test spans | "
          "test reviews |\n|---|---|---|---|---|")
    for row in rows:
        shown = [f"{row[k]:.4f}" if row[k] is not None else "—" for k in ("validation_spans", "test_spans",
                                                                            "test_reviews")]
        print(f"| {row['design']} | {row['parameters']} | " + " | ".join(shown) + " |")
    meta = machine() | {"train": len(train), "validation": len(validation), "test": len(test),
                        "label_column": args.label_column, "members": args.members, "seed": args.seed,
                        "fit_seconds": round(fit_seconds, 1), "stack": ensemble.describe(model)}
    out = Path(args.out)
    if args.label_column != "label":
        out = out.with_name(f"{out.stem}_{args.label_column}{out.suffix}")
    write_results(out, meta, rows)


if __name__ == "__main__":
    main()
