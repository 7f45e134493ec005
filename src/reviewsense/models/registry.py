"""The family protocol and its registry: the one list of model families.

A family is one module that declares, as ``FAMILY``, a :class:`Family`: its name, its
parameters dataclass (:mod:`reviewsense.models.params`: every setting written once, with its
default, help and range), its predictor (numpy inference: what every export loads into) and
its fit function. Everything else is derived from the registry: the estimator class
(:func:`reviewsense.estimators.estimator_class`), the ``train`` flags and ``--model`` choices,
what ``config.json`` and ``info`` show, the pipeline's dispatch and the loader of exports.

Adding a family: write a module with a params dataclass, a :class:`~.base.Predictor` subclass
(``family = "<name>"``, ``_logits``, ``tensors``, ``from_tensors``) and ``FAMILY = Family(...)``
whose ``fit(job, params)`` returns a :class:`Fitted`; then either call :func:`register` with
it, or declare it as an entry point of the group ``reviewsense.families`` in your package's
``pyproject.toml`` (``toy = "mypackage.toy:FAMILY"``), which reviewsense loads on first use.
The families shipped with reviewsense are the modules of :data:`MODULES`.
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    import numpy as np

    from ..data.dataset import Dataset
    from ..training.checkpoint import Checkpoint
    from ..training.history import History
    from ..training.torch_loop import Callback, FitOptions
    from .base import Predictor

# The families shipped with reviewsense, in the order ``--help`` lists them (each a module of
# this package); :func:`register` and the ``reviewsense.families`` entry points add others.
MODULES = ("nblinear", "seed", "cnn", "sentence", "transformer", "ensemble")
ENTRY_POINTS = "reviewsense.families"
_registered: dict[str, Family] = {}


@dataclass
class Fitted:
    """What a family's fit gives back."""

    predictor: Predictor
    history: History | None = None  # families trained in epochs
    held_out: Predictor | None = None  # the model that did not see the validation labels, if not ``predictor``
    validation_logits: np.ndarray | None = None  # that model's scores of the validation texts, where at hand


@dataclass
class FitJob:
    """What every fit gets: the split (``train.weights``: the rows' weights, or None), the word
    vectors (families that read them), every family's settings (a family made of others, like
    the stacked preset, passes its members theirs), and how to run: the seed, the threads,
    the checkpoint to resume from and write when stopped, and the torch loop's callbacks."""

    train: Dataset
    validation: Dataset
    vectors: Any = None
    settings: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    seed: int = 0
    n_jobs: int | None = None
    checkpoint: Checkpoint | None = None
    callbacks: Sequence[Callback] = ()

    def params(self, name: str) -> Any:
        """Family ``name``'s parameters from this job's settings."""
        return family(name).make_params(self.settings.get(name, {}))

    def options(self, params: Any) -> FitOptions:
        """The torch loop's options for a family trained in epochs (``params``: a Schedule)."""
        from ..training.torch_loop import FitOptions

        return FitOptions.from_params(params, seed=self.seed, threads=self.n_jobs, checkpoint=self.checkpoint,
                                      callbacks=list(self.callbacks))


@dataclass(frozen=True)
class Family:
    name: str
    summary: str  # one line: what it is
    params: type  # the dataclass of its hyper-parameters (fields made with models.params.param)
    predictor: type[Predictor]
    fit: Callable[[FitJob, Any], Fitted] | None  # (job, params) → Fitted; None: not trained from the CLI
    estimator: str = ""  # the name of its scikit-learn estimator class ("" for none: a stack has its own)
    standalone: bool = True  # offered by --model (False: built by a preset)
    word_vectors: bool = False  # reads the vectors its ``embedding`` parameter names

    @property
    def epochs(self) -> bool:
        """Trained in epochs by the torch loop (its parameters are a Schedule)."""
        from .params import Schedule

        return issubclass(self.params, Schedule)

    def make_params(self, settings: Mapping[str, Any]) -> Any:
        """The parameters dataclass with ``settings`` over its defaults, checked (types, ranges);
        an unknown setting or a bad value is a ConfigError."""
        from .params import check_params

        known = {f.name for f in dataclasses.fields(self.params)}
        unknown = sorted(set(settings) - known)
        if unknown:
            raise ConfigError(f"'{self.name}' has no setting {', '.join(map(repr, unknown))} "
                              f"(its settings: {', '.join(sorted(known))})")
        return check_params(self.name, self.params(**settings))


def register(declared: Family) -> Family:
    """Add a family (a user's own, declared as above) to the registry: it trains from
    ``reviewsense train --model NAME`` (its flags appear in ``train --help``), from Python
    (:func:`reviewsense.estimators.estimator_class`), exports, loads and shows in ``info``.
    Registering a name again replaces that family; a shipped family cannot be replaced."""
    if not isinstance(declared, Family):
        raise TypeError(f"register() takes a reviewsense Family, got {type(declared).__name__}")
    if declared.name in MODULES:
        raise ConfigError(f"'{declared.name}' is a family shipped with reviewsense; choose another name")
    if not declared.name.isidentifier() or getattr(declared.predictor, "family", None) != declared.name:
        raise ConfigError(f"family '{declared.name}': its name must be an identifier and its predictor's family")
    _registered[declared.name] = declared
    families.cache_clear()
    return declared


def unregister(name: str) -> None:
    """Remove a family added by :func:`register` (tests, notebooks that redefine one)."""
    _registered.pop(name, None)
    families.cache_clear()


@functools.cache
def families() -> dict[str, Family]:
    """Every family by name: the shipped ones, those of installed packages' entry points, then
    those registered (imports each family's module: none imports torch at import time)."""
    from importlib.metadata import entry_points

    found = {}
    for module in MODULES:
        declared = importlib.import_module(f"{__package__}.{module}").FAMILY
        if declared.name != module or declared.predictor.family != module:
            raise RuntimeError(f"models/{module}.py declares family '{declared.name}'")  # a developer's slip
        found[module] = declared
    for point in entry_points(group=ENTRY_POINTS):
        try:
            declared = point.load()
        except Exception as exc:  # a broken plug-in must not break reviewsense: say so and go on
            from ..progress import warn

            warn(f"model family '{point.name}' from {point.value} did not load ({type(exc).__name__}: {exc})")
            continue
        if isinstance(declared, Family) and declared.name == point.name and declared.name not in found:
            found[declared.name] = declared
    found.update(_registered)
    return found


def family(name: str) -> Family:
    """The family called ``name``; unknown names are a ConfigError listing the known ones."""
    known = families()
    if name not in known:
        raise ConfigError(f"unknown model family '{name}' (known: {', '.join(known)})")
    return known[name]


def trainable() -> list[str]:
    """The families ``reviewsense train --model`` offers."""
    return [name for name, declared in families().items() if declared.fit is not None and declared.standalone]


def check_family(name: Any) -> str:
    """``name`` (as a manifest gives it) if it names a model family; else :class:`ModelFileError`."""
    from ..errors import ModelFileError

    known = families()
    if name is None:
        raise ModelFileError(f"no model family (known: {', '.join(known)})")
    if not isinstance(name, str) or name not in known:
        shown = f"'{name}'" if isinstance(name, str) else json.dumps(name)[:40]
        raise ModelFileError(f"unknown model family {shown} (known: {', '.join(known)})")
    return name


def predictor_class(name: Any) -> type[Predictor]:
    """The predictor class of the family a manifest names."""
    return families()[check_family(name)].predictor
