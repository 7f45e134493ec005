"""A stacked ensemble of other families (``reviewsense train --preset best``).

Each member scores the text with its own vectorizer. What combines their logits:

- without a length calibration, the *stack weights*: a logistic regression fitted on the
  members' validation logits (a weight per member and a bias, per class for K > 2
  classes), so the output is calibrated too;
- with one (``reviewsense train``'s default), the length calibration *is* the stack: it
  reads every member's logit and weighs each by a slope that depends on the text's length
  (:class:`~.calibration.LengthCalibration` of several scores), fitted by the same maximum
  likelihood on spans of the validation texts. Its slopes do what the weights did, per
  length, and its fit is convex (it does not start from them), so the weights would be dead
  numbers: an ensemble drops them when it gets a length calibration. It also beats one
  calibration of the stacked logit (``bench/stack_calibration.py``, 6,000 IMDB training
  reviews, nblinear + cnn): test log-loss 0.551 on spans and 0.247 on whole reviews,
  against 0.568 and 0.251.

Saved in the one export format: the members' vectorizers together in ``vectorizer.json``,
their weights in ``model.safetensors`` under ``m0.``, ``m1.``, … prefixes, their extra files
(if any) under the same prefixes (``m0.tokenizer.json``), and the stack weights (only without
a length calibration) as ``stack.weights`` and ``stack.bias``. Exports written before
reviewsense 0.2.0 hold stack weights next to the length calibration; they load and predict as
they did (the weights are dropped).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError, ModelFileError
from ..text import MemberVectorizers
from .base import Predictor, check_shapes
from .calibration import LengthCalibration, SoftmaxLengthCalibration, calibration_from_dict
from .explanation import Explanation, combine
from .params import param
from .registry import Family, FitJob, Fitted, family, predictor_class


class EnsemblePredictor(Predictor):
    family = "ensemble"
    batch_size = 16_384

    def __init__(self, members: Sequence[Predictor], weights: np.ndarray | None, bias: Any = None,
                 class_names: Sequence[str] = ("negative", "positive")):
        """``weights`` (one per member) and ``bias`` (two classes: one; more: one per class) are
        the stack; None: the length calibration that the model gets next is its stack."""
        self.members = list(members)
        self.weights: np.ndarray | None = None
        self.bias: Any = None
        super().__init__(MemberVectorizers([m.vectorizer for m in members]), {}, class_names)
        if weights is not None:
            self.weights = np.asarray(weights, dtype=np.float32)
            self.bias = float(np.ravel(bias)[0]) if self.binary else np.asarray(bias, dtype=np.float32).ravel()

    @property
    def length_calibration(self) -> LengthCalibration | SoftmaxLengthCalibration | None:
        """The calibration of the members' logits by length: when there is one, it is the stack."""
        return self._length_calibration

    @length_calibration.setter
    def length_calibration(self, calibration: LengthCalibration | SoftmaxLengthCalibration | None) -> None:
        self._length_calibration = calibration
        if calibration is not None:  # its per-member slopes replace the stack weights
            self.weights = self.bias = None

    @property
    def needs_length_calibration(self) -> bool:
        return self.weights is None

    def _stack(self) -> tuple[np.ndarray, Any]:
        """The stack weights and bias (an ensemble without a length calibration has them)."""
        if self.weights is None:
            raise ConfigError("this ensemble's members were combined by its length calibration, which it no "
                              "longer has")
        return self.weights, self.bias

    @property
    def config(self) -> dict[str, Any]:
        """The members' families and configs (and length calibrations, where they have one)."""
        return {"members": [{"family": m.family, "config": m.config} | (
            {"length_calibration": m.length_calibration.to_dict()} if m.length_calibration else {})
            for m in self.members]}

    @config.setter
    def config(self, value: dict[str, Any]) -> None:
        """Derived from the members: nothing to set."""

    def member_logits(self, texts: Sequence[str]) -> np.ndarray:
        """``(n, members)``; ``(n, members, K)`` for K > 2 classes."""
        return np.stack([m.predict_logits(texts) for m in self.members], axis=1)

    def _logits(self, texts: Sequence[str]) -> np.ndarray:
        """The stack: the members' logits weighted as fitted on whole validation texts (only
        used without a length calibration)."""
        return combine_logits(self.member_logits(texts), *self._stack())

    @property
    def raw_score_count(self) -> int:
        return len(self.members)

    def _logits_and_lengths(self, texts: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
        """The members' logits, one column each: the length calibration weighs each member by
        the text's length (on short texts the network adds less than on whole reviews)."""
        from ..text.ngrams import count_tokens

        return self.member_logits(texts), count_tokens(texts)

    @property
    def can_explain(self) -> bool:
        return all(member.can_explain for member in self.members)

    @property
    def batch_requests(self) -> bool:
        return any(member.batch_requests for member in self.members)

    def _explain(self, text: str, k: int, target: int | None = None) -> Explanation:
        """The members' explanations (of class ``target``'s logit), weighted like their logits in the stack."""
        weights, bias = self._stack()
        parts = [member.explain(text, k, label=target) for member in self.members]
        return combine(parts, weights.tolist(), bias if self.binary else float(bias[target or 0]), self.class_names, k)

    def _explain_calibrated(self, text: str, k: int, slopes: np.ndarray, shift: float,
                            target: int | None = None) -> Explanation:
        """The members' explanations, weighted by the length calibration's slopes for this text."""
        calibration = self.length_calibration
        assert calibration is not None
        parts = [member.explain(text, k, label=target) for member in self.members]
        c = target or 0
        empty = calibration.empty.reshape(len(self.members), -1)[:, c]
        bias = float(np.atleast_1d(calibration.prior)[c]) - float(slopes @ empty) + shift
        return combine(parts, slopes.tolist(), bias, self.class_names, k)

    def tensors(self) -> dict[str, np.ndarray]:
        out = {} if self.weights is None else {
            "stack.weights": self.weights, "stack.bias": np.atleast_1d(np.asarray(self.bias, dtype=np.float32))}
        for i, member in enumerate(self.members):
            out.update({f"m{i}.{k}": v for k, v in member.tensors().items()})
        return out

    def extra_files(self) -> dict[str, bytes]:
        return {f"m{i}.{name}": data for i, member in enumerate(self.members)
                for name, data in member.extra_files().items()}

    @classmethod
    def from_tensors(cls, vectorizer, config, tensors, class_names) -> EnsemblePredictor:
        return cls.from_export(vectorizer, config, tensors, class_names, {})

    @classmethod
    def from_export(cls, vectorizer, config, tensors, class_names, files: Mapping[str, bytes]) -> EnsemblePredictor:
        specs = config.get("members") if isinstance(config, dict) else None
        if not isinstance(vectorizer, MemberVectorizers) or not isinstance(specs, list) or \
                len(specs) != len(vectorizer.members):
            raise ModelFileError("an ensemble needs one vectorizer and one config per member")
        if any(spec.get("family") == cls.family for spec in specs):
            raise ModelFileError("ensembles cannot nest")
        members = []
        for i, (spec, member_vectorizer) in enumerate(zip(specs, vectorizer.members, strict=True)):
            prefix = f"m{i}."
            own = {k.removeprefix(prefix): v for k, v in tensors.items() if k.startswith(prefix)}
            own_files = {k.removeprefix(prefix): v for k, v in files.items() if k.startswith(prefix)}
            member = predictor_class(spec["family"]).from_export(member_vectorizer, spec["config"], own, class_names,
                                                                 own_files)
            if spec.get("length_calibration") is not None:
                member.length_calibration = calibration_from_dict(spec["length_calibration"])
                if member.length_calibration.scores != 1 or isinstance(member.length_calibration,
                                                                       SoftmaxLengthCalibration) == member.binary:
                    raise ModelFileError(f"member {i}'s length calibration must read one score of its classes")
            members.append(member)
        unclaimed = [name for name in files if not name.startswith(tuple(f"m{i}." for i in range(len(members))))]
        if unclaimed:
            raise ModelFileError(f"files of no member: {', '.join(sorted(unclaimed))}")
        stack = {k: v for k, v in tensors.items() if k.startswith("stack.")}
        if not stack:  # the length calibration is the stack (the loader refuses a manifest without one)
            return cls(members, None, None, class_names)
        biases = 1 if len(class_names) == 2 else len(class_names)
        check_shapes(stack, {"stack.weights": (len(members),), "stack.bias": (biases,)})
        return cls(members, stack["stack.weights"], stack["stack.bias"], class_names)


def combine_logits(member_logits: np.ndarray, weights: np.ndarray, bias) -> np.ndarray:
    """The stack's logits: ``(n, members) @ weights + bias``, or for K classes
    ``Σ_m weights[m] · logits[:, m, :] + bias`` (one bias per class)."""
    if member_logits.ndim == 2:
        return member_logits @ weights + bias
    return np.einsum("nmk,m->nk", member_logits, weights) + bias


def stack(members: Sequence[Predictor], validation_logits: np.ndarray, labels: np.ndarray,
          class_names: Sequence[str]) -> EnsemblePredictor:
    """Fit the combining logistic regression on the members' validation logits: a weight per
    member and a bias (per class, for K > 2 classes, by softmax cross-entropy)."""
    if validation_logits.ndim == 2:
        from sklearn.linear_model import LogisticRegression

        model = LogisticRegression(C=1e4, max_iter=1000).fit(validation_logits, labels)
        return EnsemblePredictor(members, model.coef_[0], float(model.intercept_[0]), class_names)
    from .softmax_fit import fit_softmax

    ones = np.ones((len(validation_logits), 1))
    weights, bias = fit_softmax(validation_logits, labels, ones, ones, slope_l2=1e-4, shift_l2=1e-4,
                                slope_start=1.0 / validation_logits.shape[1])
    return EnsemblePredictor(members, weights[:, 0], bias[:, 0], class_names)


def stack_held_out(members: Sequence[Predictor], held_out: Sequence[Predictor], validation_logits: np.ndarray,
                   labels: np.ndarray, class_names: Sequence[str]) -> tuple[EnsemblePredictor, EnsemblePredictor]:
    """The stack of ``members``, and the same weights over ``held_out`` (each member as it was
    before it saw the validation labels: what the length calibration is fitted on).
    ``validation_logits`` are the held-out members' scores of the validation texts."""
    from ..progress import log

    model = stack(members, validation_logits, labels, class_names)
    log(f"stacked ensemble (a length calibration, when on, replaces these weights): {describe(model)}")
    return model, EnsemblePredictor(held_out, model.weights, model.bias, class_names)


def describe(ensemble: EnsemblePredictor) -> dict[str, Any]:
    """The members' families and the stack weights (None: the length calibration is the stack)."""
    weights = None if ensemble.weights is None else ensemble.weights.round(4).tolist()
    bias = None if ensemble.bias is None else np.round(ensemble.bias, 4).tolist()
    return {"members": [m.family for m in ensemble.members], "weights": weights, "bias": bias}


@dataclass
class StackParams:
    members: list[str] = param(["nblinear", "cnn"], "the families stacked, each trained with its own settings",
                               cli=False)


def fit_family(job: FitJob, params: StackParams) -> Fitted:
    """``--preset best``: each member trained on the same split (with its settings from the
    job), then stacked on the validation scores of the members that did not see those labels."""
    if len(params.members) < 2 or "ensemble" in params.members:
        raise ConfigError("a stack needs two or more member families, none of them a stack")
    fitted = []
    for name in params.members:
        member = family(name)
        if member.fit is None:
            raise ConfigError(f"'{name}' cannot be trained as a member of a stack")
        fitted.append(member.fit(job, job.params(name)))
    return stack_fitted(fitted, job.validation, job.train.class_names)


def stack_fitted(fitted: Sequence[Fitted], validation, class_names: Sequence[str]) -> Fitted:
    """The stack of fitted members, on the validation scores of the members that did not see
    those labels; its history is the first member's that has one."""
    held_out = [f.held_out or f.predictor for f in fitted]
    logits = np.stack([f.validation_logits if f.validation_logits is not None
                       else model.predict_logits(validation.texts)
                       for f, model in zip(fitted, held_out, strict=True)], axis=1)
    model, held_out_model = stack_held_out([f.predictor for f in fitted], held_out, logits, validation.labels,
                                           class_names)
    history = next((f.history for f in fitted if f.history is not None), None)
    return Fitted(model, history, held_out_model)


FAMILY = Family(
    name="ensemble", summary="a stack of other families (--preset best: nblinear + cnn)",
    params=StackParams, predictor=EnsemblePredictor, fit=fit_family, standalone=False, estimator="")
