"""A toy model family, declared the way a user declares one: every text gets the training data's
class rates. tests/models/test_family.py registers it (``reviewsense.register``) and installs it
as an entry point."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from reviewsense.models.base import Predictor, check_shapes
from reviewsense.models.params import param
from reviewsense.models.registry import Family, Fitted


@dataclass
class PriorParams:
    smoothing: float = param(1.0, "added to every class's count", ge=0)


class PriorPredictor(Predictor):
    """Every text gets the training data's class rates: the smallest possible family."""

    family = "prior"

    def __init__(self, vectorizer, config, tensors, class_names=("negative", "positive")):
        super().__init__(None, config, class_names)
        self.log_rates = np.asarray(tensors["log_rates"], dtype=np.float32)

    def _logits(self, texts):
        if self.binary:
            return np.full(len(texts), self.log_rates[1] - self.log_rates[0], dtype=np.float32)
        return np.tile(self.log_rates, (len(texts), 1))

    def tensors(self):
        return {"log_rates": self.log_rates}

    @classmethod
    def from_tensors(cls, vectorizer, config, tensors, class_names):
        check_shapes(tensors, {"log_rates": (len(class_names),)})
        return cls(None, config, tensors, class_names)


def _fit_prior(job, params):
    counts = np.bincount(job.train.labels, minlength=len(job.train.class_names)) + params.smoothing
    rates = {"log_rates": np.log(counts / counts.sum())}
    return Fitted(PriorPredictor(None, dataclasses.asdict(params), rates, job.train.class_names))


FAMILY = Family(name="prior", summary="the class rates, whatever the text", params=PriorParams,
                predictor=PriorPredictor, fit=_fit_prior)
