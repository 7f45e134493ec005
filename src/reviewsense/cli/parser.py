"""The ``reviewsense`` command line: every subcommand's flags, their checks and examples."""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable
from typing import Any

from .. import __version__
from ..models.params import Spec, iter_cli
from ..models.registry import families, trainable

DESCRIPTION = """The ``reviewsense`` command: train | evaluate | predict | explain | serve | pretrain | data | info.

Results go to stdout, progress and logs to stderr. A bad input prints one line
``reviewsense: error: ...`` and exits with code 2."""


EXAMPLES = {
    "train": """examples:
  reviewsense train --run-dir runs/imdb                      # IMDB, the default (nblinear) model
  reviewsense train --model seed --run-dir runs/seed         # the tutorial's network, best settings
  reviewsense train --model seed --run-dir runs/tutorial --embedding scratch --embedding-dim 50 \\
      --ngrams 1 --max-tokens 20000 --learning-rate 0.001 --no-early-stopping  # the tutorial's recipe
  reviewsense train --data reviews.csv --text-column review --label-column sentiment \\
      --classes bad,good --run-dir runs/mine                 # your own data
  reviewsense train --label-column rating --run-dir runs/stars   # IMDB's star ratings: 8 classes (1-4, 7-10)
  reviewsense train --spark local[2] --data reviews.parquet --run-dir runs/lake   # nblinear, fitted by Spark""",
    "predict": """examples:
  reviewsense predict --model runs/imdb/model "The movie was great!" "The movie was terrible..."
  reviewsense predict --model runs/imdb/model --input reviews.jsonl --output scores.jsonl
  cat reviews.txt | reviewsense predict --model runs/imdb/model --format csv
  reviewsense predict --model runs/imdb/model --spark local[2] --input reviews.parquet --output scores.parquet""",
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
  reviewsense data describe --label-column rating             # IMDB's star ratings (8 classes)
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


def _whole_number(low: int, high: int | None = None) -> Callable[[str], int]:
    """An argparse type: a whole number from ``low`` (to ``high``)."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {value!r}") from None
        if number < low or (high is not None and number > high):
            raise argparse.ArgumentTypeError(f"must be from {low} to {high}, got {number}" if high is not None else
                                             f"must be at least {low}, got {number}")
        return number
    return parse


def _real_number(allowed: Callable[[float], bool], requirement: str, what: str = "a number") -> Callable[[str], float]:
    """An argparse type: a number for which ``allowed`` holds (``requirement`` says which)."""
    def parse(value: str) -> float:
        try:
            number = float(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {value!r}") from None
        if not allowed(number):  # NaN fails every comparison
            raise argparse.ArgumentTypeError(f"must be {requirement}, got {value}")
        return number
    return parse


SEED_MAX = 2**32 - 2  # numpy seeds are 0 … 2**32 - 1, and a split takes --seed + 1
_positive = _whole_number(1)
_non_negative = _whole_number(0)
_seed = _whole_number(0, SEED_MAX)
_port = _whole_number(1, 65535)
_positive_float = _real_number(lambda x: x > 0 and math.isfinite(x), "a finite number greater than 0")
_probability = _real_number(lambda x: 0 <= x <= 1, "a probability from 0 to 1", "a probability")


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
    if len(parts) < 2 or not all(parts) or len(set(parts)) != len(parts):
        raise argparse.ArgumentTypeError("give two or more different class names, e.g. NEG,POS (negative first) "
                                         "or bad,ok,good")
    return parts


def _add_data_args(p: argparse.ArgumentParser, test: bool = False, trained: bool = False) -> None:
    """The data flags; ``trained``: ``evaluate``'s, whose defaults are the model's training data."""
    g = p.add_argument_group("data")
    imdb = "$REVIEWSENSE_IMDB, the cache, else download IMDB"
    g.add_argument("--data", metavar="PATH", help="IMDB archive/folder, or your CSV/TSV/JSONL/Parquet/class-folder "
                   f"(default: {'for a model trained on IMDB, ' if trained else ''}{imdb})")
    if test:
        g.add_argument("--test-data", metavar="PATH",
                       help="labelled test file (own data; default: hold out --test-size)")
        g.add_argument("--test-size", type=_size, default=0.2,
                       help="rows (or fraction) held out as test for own data (default 0.2)")
    as_trained = "the model's at training, else " if trained else ""
    g.add_argument("--text-column", default=None if trained else "text",
                   help=f"text column/field (default: {as_trained}text)")
    g.add_argument("--label-column", default=None if trained else "label",
                   help=f"label column/field (default: {as_trained}label); IMDB: label (negative/positive) or rating "
                        "(its star ratings 1-4 and 7-10 as 8 classes)")
    g.add_argument("--classes", type=_classes, metavar="NEG,POS",
                   help="the label values: two, negative first (0/1, true/false, neg/pos are understood), or more "
                        "in the order you want (default: three or more labels are the classes, sorted; evaluate: "
                        "the model's classes by default, and refuses others)")
    g.add_argument("--sep", metavar="CHAR", help="CSV separator (default: ',' for .csv, tab for .tsv; ';', tab or "
                   "'|' are found from the header when the columns are not; '\\t' = tab)")
    g.add_argument("--encoding", metavar="NAME", help="text encoding, e.g. cp1252 or latin-1 (default: utf-8, or "
                   "utf-16/utf-32 from a byte-order mark)")
    g.add_argument("--no-download", action="store_true", help="never download IMDB; fail if no local copy")


def family_flags() -> dict[str, list[tuple[str, Spec]]]:
    """Every family setting offered as a ``train`` flag → the families that read it (registry
    order) with their parameter: built from each family's parameters dataclass."""
    flags: dict[str, list[tuple[str, Spec]]] = {}
    for name, declared in families().items():
        if declared.fit is None:
            continue
        for spec in iter_cli(declared.params):
            flags.setdefault(spec.flag, []).append((name, spec))
    return flags


def flag_dest(flag: str) -> str:
    return flag.removeprefix("--").replace("-", "_")


def _spec_type(spec: Spec) -> Callable[[str], Any]:
    """An argparse type for one parameter: parsed as its type, checked against its range."""
    kind = spec.element or spec.type

    def parse(value: str) -> Any:
        try:
            if spec.element is not None:
                parsed: Any = [kind(v) for v in value.split(",")]
            else:
                parsed = float(value) if kind is float else int(value) if kind is int else value
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {'a whole number' if kind is int else 'a number'}, "
                                             f"got {value!r}") from None
        problem = spec.check(parsed)
        if problem:
            raise argparse.ArgumentTypeError(problem.removeprefix(f"{spec.name} ").removeprefix(f"{spec.name}: "))
        return parsed
    parse.__name__ = spec.name
    return parse


def add_family_flags(group) -> None:
    """One flag per family setting (shared by the families that have it), its help showing each
    family's default."""
    for flag, readers in family_flags().items():
        spec = readers[0][1]
        if spec.type is bool:
            who = ", ".join(name for name, _ in readers)
            text = f"turn off (on by default): {spec.help}" if spec.default else spec.help
            group.add_argument(flag, dest=flag_dest(flag), action="store_true", help=f"{text} ({who})")
            continue
        shown = "; ".join(f"{name}: {_shown(s.default)}" for name, s in readers)
        meanings: dict[str, list[str]] = {}  # families that share a flag may read it differently
        for name, s in readers:
            limits = s.range_text()
            meanings.setdefault(f"{s.help}{f' ({limits})' if limits else ''}", []).append(name)
        text = next(iter(meanings)) if len(meanings) == 1 else \
            "; ".join(f"{', '.join(names)}: {meaning}" for meaning, names in meanings.items())
        group.add_argument(flag, dest=flag_dest(flag), type=_spec_type(spec), default=None,
                           metavar=spec.metadata.get("metavar") or spec.name.upper(), help=f"{text} (default {shown})")


def _shown(value: Any) -> str:
    if value is None:
        return "none"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, int) and not isinstance(value, bool) and value >= 10_000:
        return f"{value:_}".replace("_", ",")
    return str(value)


def _members(value: str) -> list[str]:
    names = [name.strip() for name in value.split(",") if name.strip()]
    unknown = [name for name in names if name not in trainable()]
    if unknown or len(names) < 2 or len(set(names)) != len(names):
        raise argparse.ArgumentTypeError(f"two or more different families separated by commas, from "
                                         f"{', '.join(trainable())} (got {value!r})")
    return names


def build_parser() -> argparse.ArgumentParser:
    fmt = argparse.RawDescriptionHelpFormatter
    parser = argparse.ArgumentParser(prog="reviewsense", description=DESCRIPTION, formatter_class=fmt)
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
    p.add_argument("--stratify", action=argparse.BooleanOptionalAction, default=None,
                   help="hold out every class in its share of the rows (default: on when rows, not whole groups, "
                        "are held out: own data without --group-column, or --random-split)")
    p.add_argument("--seed", type=_seed, default=0, help="random seed (split, init, shuffling)")
    m = p.add_argument_group("model")
    m.add_argument("--model", default="nblinear", choices=trainable(),
                   help="; ".join(f"{name}: {families()[name].summary}" for name in trainable()))
    m.add_argument("--preset", choices=["best"], default=None,
                   help="best: nblinear + a network, stacked on validation and calibrated by length. The network: "
                        "the transformer when torch sees a GPU; else a convolutional network on word2vec vectors "
                        "pretrained on the unlabelled reviews (about 10 minutes on IMDB, 2 cores)")
    m.add_argument("--members", type=_members, default=None, metavar="A,B",
                   help="--preset best: the families stacked (e.g. nblinear,transformer to fine-tune the transformer "
                        "on a CPU too)")
    t = p.add_argument_group("training")
    t.add_argument("--no-length-calibration", action="store_true",
                   help="keep the model's own scores (default: calibrated on validation spans of every length, "
                        "so short texts get honest probabilities)")
    t.add_argument("--class-weight", choices=["balanced"], default=None,
                   help="balanced: each class weighs as much in the training loss (default: each text weighs 1)")
    t.add_argument("--threads", type=_positive, default=None, help="threads (default: every core)")
    t.add_argument("--spark", nargs="?", const="", metavar="MASTER",
                   help="train the default model (nblinear) as Spark jobs (the 'spark' extra and Java 17 or 21): "
                        "MASTER such as local[2], spark://host:7077 or yarn; alone, the master spark-submit gives. "
                        "--data: a Parquet/CSV/TSV/JSONL file or folder Spark reads (rows held out by a hash of "
                        "their text or --group-column), or IMDB")
    add_family_flags(p.add_argument_group("the families' settings (defaults per family; each flag is refused for "
                                          "a family that does not read it)"))

    p = sub.add_parser("evaluate", help="metrics of an exported model on labelled data",
                       epilog=EXAMPLES["evaluate"], formatter_class=fmt)
    p.add_argument("--model", required=True, metavar="DIR")
    _add_data_args(p, trained=True)
    p.add_argument("--output", metavar="FILE", help="also write the metrics JSON here")
    p.add_argument("--reliability-plot", metavar="PNG", help="also draw the reliability diagram here")
    p.add_argument("--confusion-plot", metavar="PNG", help="also draw the confusion matrix here (a row per true "
                   "class, shaded by its share: the diagonal is each class's recall)")
    p.add_argument("--by-length", action="store_true",
                   help="also score spans of each text (windows of 1-50 words, a sentence, the whole text; of at "
                        "most 25,000 texts, a seeded sample of larger sets) and print accuracy, ROC-AUC, ECE and "
                        "positive rates per length")
    p.add_argument("--by-length-plot", metavar="PNG", help="with --by-length: draw accuracy and ECE against length")
    p.add_argument("--seed", type=_seed, default=0, help="with --by-length: which spans are cut (default 0)")
    p.add_argument("--json", action="store_true",
                   help="print the metrics as one JSON document and nothing else (for jq and scripts; by default "
                        "tables of the per-class metrics, the confusion matrix and --by-length follow the JSON)")

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
    p.add_argument("--threshold", type=_probability, default=None,
                   help="two classes only: the probability at which label = 1, from 0 to 1 (default 0.5); refused "
                        "for a model of more classes, whose label is the top class")
    p.add_argument("--workers", type=_positive, default=1,
                   help="processes scoring chunks of --input in parallel (default 1); output keeps input order")
    p.add_argument("--chunk-size", type=_positive, default=32_768,
                   help="rows read, scored and written at a time: memory stays flat for any file size")
    p.add_argument("--spark", nargs="?", const="", metavar="MASTER",
                   help="run as a Spark job (the 'spark' extra and Java 17 or 21): MASTER such as local[2], "
                        "spark://host:7077 or yarn; alone, the master spark-submit gives. --input and --output are "
                        "paths Spark reads and writes (--output: a new folder of Parquet or JSONL part files)")

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
    p.add_argument("--cors-origin", action="append", default=[], metavar="ORIGIN",
                   help="let web pages of this origin (scheme://host[:port]) call the API from a browser (CORS); "
                        "repeat it or separate with commas; '*' lets any web page in (with no --api-key, any site "
                        "its visitors open can use the model). Default: none, only the server's own page")
    p.add_argument("--ready-file", metavar="PATH",
                   help="write this file (JSON: url, pid, workers) once every worker has loaded the model and the "
                        "server answers; removed when it stops (for a supervisor or a script to wait on)")

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

