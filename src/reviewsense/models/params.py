"""A family's parameters, written once.

Every family declares its hyper-parameters as a dataclass whose fields are made with
:func:`param`: the default, a one-line help, and the allowed range or choices. That
dataclass is the only place a setting is written. From it come

* the scikit-learn estimator's constructor, ``get_params``/``set_params`` and the check of
  the values (:mod:`reviewsense.estimators`);
* the ``reviewsense train`` flags: name, type, range, help with the default
  (:mod:`reviewsense.cli.parser`), and the refusal of another family's flags;
* what a run's ``config.json`` and ``info`` show (only the chosen family's settings).

Families trained in epochs subclass :class:`Schedule` (epochs, batch size, learning rate,
early stopping, device) and set their own defaults with :func:`default`.

>>> from dataclasses import dataclass
>>> @dataclass
... class ToyParams:
...     width: int = param(8, "units in the layer", ge=1)
>>> check_params("toy", ToyParams(width=0))
Traceback (most recent call last):
...
reviewsense.errors.ConfigError: toy: width must be ≥ 1, got 0
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from ..errors import ConfigError

_MISSING: Any = dataclasses.MISSING


def param(default: Any, help: str, *, ge: float | None = None, gt: float | None = None,  # noqa: A002
          le: float | None = None, lt: float | None = None, choices: tuple[Any, ...] | None = None,
          flag: str | None = None, cli: bool = True, metavar: str | None = None) -> Any:
    """A dataclass field of a family's parameters.

    ``default``: the one default (a list is copied per instance); ``help``: one line;
    ``ge``/``gt``/``le``/``lt``: the range of a number; ``choices``: the allowed values;
    ``flag``: the ``train`` flag if not ``--name-with-dashes`` (a flag of a boolean always sets
    the opposite of its default); ``cli=False``: not offered as a flag."""
    meta = {"help": help, "ge": ge, "gt": gt, "le": le, "lt": lt, "choices": choices, "flag": flag, "cli": cli,
            "metavar": metavar}
    if isinstance(default, list | dict):
        return dataclasses.field(default_factory=functools.partial(_copy, default), metadata=meta)
    return dataclasses.field(default=default, metadata=meta)


def _copy(value: Any) -> Any:
    return type(value)(value)


def default(base: type, name: str, value: Any) -> Any:
    """The field ``name`` of ``base`` (its help and range) with another default: how a subclass
    of :class:`Schedule` sets its own epochs, batch size…"""
    declared = next(f for f in dataclasses.fields(base) if f.name == name)
    meta = dict(declared.metadata)
    return param(value, **{k: meta[k] for k in meta})


@dataclass(frozen=True)
class Spec:
    """One parameter as the CLI and the estimators see it."""

    name: str
    type: Any  # int, float, bool, str, list[int]… (None allowed when ``optional``)
    default: Any
    help: str
    optional: bool
    metadata: dict[str, Any]

    @property
    def flag(self) -> str:
        return self.metadata.get("flag") or "--" + self.name.replace("_", "-")

    @property
    def cli(self) -> bool:
        return bool(self.metadata.get("cli", True))

    @property
    def element(self) -> Any:
        """The element type of a list or tuple parameter (else None)."""
        if typing.get_origin(self.type) in (list, tuple):
            return typing.get_args(self.type)[0]
        return None

    def range_text(self) -> str:
        m = self.metadata
        parts = [f"{op} {m[key]:g}" for key, op in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<"))
                 if m.get(key) is not None]
        if m.get("choices"):
            parts.append("one of " + ", ".join(map(str, m["choices"])))
        return " and ".join(parts)

    def check(self, value: Any) -> str | None:
        """What is wrong with ``value`` for this parameter, or None."""
        if value is None:
            return None if self.optional else f"{self.name} must be set (got None)"
        element = self.element
        if element is not None:
            if isinstance(value, str) or not isinstance(value, list | tuple) or not value:
                return f"{self.name} must be a non-empty list, got {value!r}"
            for item in value:
                problem = self._check_one(item, element)
                if problem:
                    return f"{self.name}: {problem.replace(self.name, 'each item', 1)}"
            return None
        return self._check_one(value, self.type)

    def _check_one(self, value: Any, kind: Any) -> str | None:
        name = self.name
        if kind is bool:
            return None if isinstance(value, bool | _np_bool()) else f"{name} must be True or False, got {value!r}"
        if kind is int:
            if isinstance(value, bool) or not isinstance(value, numbers.Integral):
                return f"{name} must be a whole number, got {value!r}"
        elif kind is float:
            if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value):
                return f"{name} must be a finite number, got {value!r}"
        elif kind is str and not isinstance(value, str):
            return f"{name} must be a string, got {value!r}"
        m = self.metadata
        choices = m.get("choices")
        if choices and value not in choices:
            return f"{name} must be one of {', '.join(map(str, choices))}, got {value!r}"
        for key, op, ok in (("ge", "≥", lambda a, b: a >= b), ("gt", ">", lambda a, b: a > b),
                            ("le", "≤", lambda a, b: a <= b), ("lt", "<", lambda a, b: a < b)):
            bound = m.get(key)
            if bound is not None and not ok(value, bound):
                return f"{name} must be {op} {bound:g}, got {value!r}"
        return None


@functools.cache
def _np_bool() -> type:
    import numpy as np

    return np.bool_


def specs(params: Any) -> tuple[Spec, ...]:
    """The parameters of a family's dataclass (the class, or an instance of it), in declaration order."""
    return _specs(params if isinstance(params, type) else type(params))


@functools.cache
def _specs(params: Any) -> tuple[Spec, ...]:
    hints = typing.get_type_hints(params)
    found = []
    for f in dataclasses.fields(params):
        kind, optional = hints[f.name], False
        if isinstance(kind, types.UnionType) or typing.get_origin(kind) is typing.Union:
            args = [a for a in typing.get_args(kind) if a is not type(None)]
            optional = len(args) < len(typing.get_args(kind))
            kind = args[0]
        value = f.default if f.default is not _MISSING else f.default_factory()  # type: ignore[operator]
        meta = dict(f.metadata)
        found.append(Spec(f.name, kind, value, meta.get("help", ""), optional, meta))
    return tuple(found)


def check_params(family: str, params: Any) -> Any:
    """Refuse a value out of its type or range (one line naming the family and the parameter),
    then run the dataclass's own ``check`` if it has one; returns ``params``."""
    for spec in specs(params):
        problem = spec.check(getattr(params, spec.name))
        if problem:
            raise ConfigError(f"{family}: {problem}")
    if isinstance(params, Schedule):
        params.check_device()
    check = getattr(params, "check", None)
    return check() if callable(check) else params


def defaults(params: type) -> dict[str, Any]:
    """Every parameter's default."""
    return {spec.name: spec.default for spec in specs(params)}


def differences(params: Any) -> dict[str, Any]:
    """The parameters of ``params`` that differ from their defaults (lists as lists)."""
    out = {}
    for spec in specs(params):
        value = getattr(params, spec.name)
        if isinstance(value, tuple):
            value = list(value)
        if value != spec.default:
            out[spec.name] = value
    return out


def iter_cli(params: type) -> Iterator[Spec]:
    """The parameters offered as ``train`` flags."""
    return (spec for spec in specs(params) if spec.cli)


@dataclass
class Schedule:
    """How a family trained in epochs is trained (the torch loop: reviewsense.training.torch_loop)."""

    epochs: int = param(10, "most epochs", ge=1)
    batch_size: int = param(64, "texts per training step", ge=1)
    learning_rate: float = param(1e-3, "the optimizer's step size", gt=0)
    early_stopping: bool = param(True, "stop when val_loss stops improving and keep the best epoch's weights",
                                 flag="--no-early-stopping")
    patience: int = param(3, "early stopping: epochs without improvement before stopping", ge=1)
    device: str = param("auto", "where to train: auto (a GPU when there is one), cpu, cuda or cuda:N",
                        metavar="DEVICE")

    def check_device(self) -> None:
        if self.device not in ("auto", "cpu", "cuda") and not (
                self.device.startswith("cuda:") and self.device[5:].isdigit()):
            raise ConfigError(f"device must be auto, cpu, cuda or cuda:N, got {self.device!r}")
