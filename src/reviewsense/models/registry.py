"""The family protocol and its registry: the one list of model families.

A family is one module of :mod:`reviewsense.models` that declares, as ``FAMILY``, a
:class:`Family`: its name, its parameters dataclass, its predictor (numpy inference: what
every export loads into) and its fit function, plus what the CLI needs to know (which
flags set which of its parameters; whether it trains in epochs or reads word vectors).
Everything else is derived from the registry below: the pipeline's dispatch, the CLI's
``--model`` choices and the check that refuses a flag of another family, ``TrainConfig``'s
per-family settings, and the loader of exports.

Adding a family:

1. write ``models/<name>.py`` with a params dataclass, a :class:`~.base.Predictor`
   subclass (``family = "<name>"``, ``_logits``, ``tensors``, ``from_tensors``) and
   ``FAMILY = Family(...)`` whose ``fit(job, params)`` returns a :class:`Fitted`;
2. add ``"<name>"`` to :data:`MODULES`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from ..data.dataset import Dataset
    from ..training.history import History
    from ..training.torch_loop import FitOptions
    from .base import Predictor

# The registry: every family's module, in the order ``--help`` lists them.
MODULES = ("nblinear", "seed", "cnn", "sentence", "ensemble")


@dataclass
class Fitted:
    """What a family's fit gives back."""

    predictor: Predictor
    history: History | None = None  # families trained in epochs
    held_out: Predictor | None = None  # the model that did not see the validation labels, if not ``predictor``
    validation_logits: np.ndarray | None = None  # that model's scores of the validation texts, where at hand


@dataclass
class FitJob:
    """What every fit gets: the split, the training schedule (families trained in epochs), the
    word vectors (families that read them) and every family's settings (a family made of
    others, like the stacked preset, passes its members theirs)."""

    train: Dataset
    validation: Dataset
    options: FitOptions
    vectors: Any = None
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def params(self, name: str) -> Any:
        """Family ``name``'s parameters from this job's settings."""
        return family(name).make_params(self.settings.get(name, {}))


@dataclass(frozen=True)
class Family:
    name: str
    summary: str  # one line: what it is
    params: type  # the dataclass of its hyper-parameters
    predictor: type[Predictor]
    fit: Callable[[FitJob, Any], Fitted] | None  # (job, params) → Fitted; None: not trained from the CLI
    # CLI flag → the parameter it sets (``--C`` → ``C``), or (parameter, how the flag's value becomes
    # it); a flag shared by families sets each reader's own
    flags: Mapping[str, str | tuple[str, Callable[[Any], Any]]] = field(default_factory=dict)
    standalone: bool = True  # offered by --model (False: built by a preset)
    epochs: bool = False  # trained in epochs: --epochs, --batch-size, --learning-rate, --patience… apply
    word_vectors: bool = False  # reads the vectors --embedding names

    def make_params(self, settings: Mapping[str, Any]) -> Any:
        """The parameters dataclass with ``settings`` over its defaults; an unknown one is a ConfigError."""
        known = {f.name for f in dataclasses.fields(self.params)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"'{self.name}' has no setting {', '.join(map(repr, unknown))} "
                              f"(its settings: {', '.join(sorted(known))})")
        params = self.params(**settings)
        check = getattr(params, "check", None)
        return check() if callable(check) else params


@functools.cache
def families() -> dict[str, Family]:
    """Every family by name (imports each family's module: none imports torch at import time)."""
    found = {}
    for module in MODULES:
        declared = importlib.import_module(f"{__package__}.{module}").FAMILY
        if declared.name != module or declared.predictor.family != module:
            raise RuntimeError(f"models/{module}.py declares family '{declared.name}'")  # a developer's slip
        found[module] = declared
    return found


def family(name: str) -> Family:
    """The family called ``name``; unknown names are a ConfigError listing the known ones."""
    if name not in MODULES:
        raise ConfigError(f"unknown model family '{name}' (known: {', '.join(MODULES)})")
    return families()[name]


def trainable() -> list[str]:
    """The families ``reviewsense train --model`` offers."""
    return [name for name, declared in families().items() if declared.fit is not None and declared.standalone]
