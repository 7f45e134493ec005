"""``reviewsense evaluate``, ``data`` and ``info``: metrics of a model, a look at a dataset or a model folder."""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from ..data.dataset import Dataset


def _load_dataset(args, head: int | None = None, **options) -> Dataset:
    """The data a command reads: an IMDB split (``--split``; ``unsup`` is unlabelled; labelled as
    ``--label-column`` says: label or rating) or the user's file. ``head``: only the first rows
    are needed (IMDB is then read only as far as they are)."""
    from ..data.files import load_table
    from ..data.imdb import check_label_column, is_imdb_source, read_imdb, read_imdb_head, resolve_source, with_labels

    if args.data is None or is_imdb_source(args.data):
        split = getattr(args, "split", "test" if args.command == "evaluate" else "train")
        check_label_column(args.label_column)
        source = resolve_source(args.data, allow_download=not args.no_download)
        data = read_imdb(source, [split])[split] if head is None else read_imdb_head(source, split, head)
        return with_labels(data, args.label_column)
    return load_table(args.data, args.text_column, args.label_column, args.classes, sep=args.sep,
                      encoding=args.encoding, **options)


def _data_of_training(args, manifest: dict) -> None:
    """Fill in what ``evaluate`` was not given from the data the model was trained on (its
    manifest's ``training``): IMDB when ``--data`` is left out, only for a model trained on IMDB;
    ``--text-column`` and ``--label-column`` as at training, for data of the same kind."""
    from ..data.imdb import is_imdb_source

    training = manifest.get("training")
    training = training if isinstance(training, dict) else {}
    config = training.get("config")
    spec = config.get("data") if isinstance(config, dict) else None
    spec = spec if isinstance(spec, dict) else {}
    source = training.get("data")
    path = spec.get("path")
    on_imdb = bool(spec) and (path is None or any(isinstance(p, str) and is_imdb_source(p) for p in (path, source)))
    if args.data is None and not on_imdb:
        trained = f"was trained on {source}" if isinstance(source, str) and source else \
            "records no training data (saved from Python, or by an older version)"
        raise ConfigError(f"{args.model}: this model {trained}, not on IMDB: give the labelled data to evaluate it on "
                          "with --data PATH (IMDB too: --data PATH/aclImdb_v1.tar.gz)")
    same_kind = on_imdb == (args.data is None or is_imdb_source(args.data))
    for column, default in (("text_column", "text"), ("label_column", "label")):
        if getattr(args, column) is None:
            recorded = spec.get(column) if same_kind else None
            setattr(args, column, recorded if isinstance(recorded, str) and recorded else default)


def cmd_evaluate(args) -> int:
    from .._fs import check_writable, write_json
    from ..data.files import align_to_model
    from ..evaluation.metrics import check_classes, evaluate, format_confusion, format_per_class, is_multiclass
    from ..export import load_model

    if args.by_length_plot and not args.by_length:
        raise ConfigError("--by-length-plot needs --by-length")
    for path in (args.output, args.reliability_plot, args.confusion_plot, args.by_length_plot):
        if path:
            check_writable(path, inputs=[args.data, args.model])
    model = load_model(args.model)
    check_classes(args.classes, model.class_names)  # labels named like the model's classes need no --classes
    _data_of_training(args, model.metadata)
    data = _load_dataset(args, model_classes=model.class_names, allow_one_class=True)
    data = align_to_model(data, model.class_names)  # by name; labels the model does not know are refused
    metrics = evaluate(model, data, reliability_plot=args.reliability_plot)
    if metrics.get("note"):
        print(f"reviewsense: warning: {metrics['note']}", file=sys.stderr)
    if args.confusion_plot:
        from ..evaluation.plots import plot_confusion

        plot_confusion(metrics, args.confusion_plot, title=data.name)
    if args.by_length:
        from ..evaluation.by_length import by_length, format_table, plot_by_length

        metrics["by_length"] = by_length(model.predict_proba, data, seed=args.seed)
        if args.by_length_plot:
            plot_by_length({model.family: metrics["by_length"]}, args.by_length_plot, title=data.name)
    if args.output:
        write_json(args.output, metrics)
    if args.json:  # one document: what a pipe (jq, a script) reads
        print(json.dumps(metrics, indent=2, allow_nan=False))
        return 0
    print(json.dumps({k: v for k, v in metrics.items() if k != "by_length"}, indent=2, allow_nan=False))
    if is_multiclass(metrics):  # K > 2: the per-class metrics and the confusion matrix as tables too
        print(f"\nper class (macro-F1 {metrics['macro_f1']:.4f}"
              + ("" if metrics.get("mae") is None else f", MAE {metrics['mae']:.4f}") + "):\n")
        print(format_per_class(metrics))
        print("\nconfusion matrix (rows: true class, columns: predicted):\n")
        print(format_confusion(metrics))
    if args.by_length:
        print(f"\nby length ({metrics['by_length']['note']}):\n")
        print(format_table(metrics["by_length"]))
    return 0


def cmd_data(args) -> int:
    from ..data.describe import describe, format_description, head

    data = _load_dataset(args, head=args.n if args.data_command == "head" else None)
    if args.data_command == "describe":
        info = describe(data)
        print(json.dumps(info, indent=2) if args.json else format_description(info))
    else:
        print(head(data, args.n, args.width))
    return 0


def cmd_info(args) -> int:
    from ..info import format_info, model_info

    info = model_info(args.model)
    print(json.dumps(info, indent=2, ensure_ascii=False) if args.json else format_info(info))
    return 0

