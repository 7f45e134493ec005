"""``reviewsense train`` and ``reviewsense pretrain``: the whole job into a run folder, word vectors."""

from __future__ import annotations

from ..errors import ConfigError
from .parser import build_parser

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
    from ..models.seed import SeedParams
    from ..pipeline import DataSpec, TrainConfig, resume_config, train

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
    from ..evaluation.metrics import is_multiclass

    test = metrics["test"]
    if is_multiclass(test):  # K > 2 classes: no positive class, so macro-F1 (and MAE of numbered classes)
        mae = "" if test.get("mae") is None else f"  mae {test['mae']:.4f}"
        print(f"test accuracy {test['accuracy']:.4f}  loss {test['loss']:.4f}  macro_f1 {test['macro_f1']:.4f}"
              f"{mae}  (train {metrics['timing']['train_seconds']:.1f}s)")
    else:
        auc = "n/a" if test["roc_auc"] is None else f"{test['roc_auc']:.4f}"
        f1 = "n/a" if test["f1"] is None else f"{test['f1']:.4f}"
        print(f"test accuracy {test['accuracy']:.4f}  loss {test['loss']:.4f}  f1 {f1}  "
              f"roc_auc {auc}  (train {metrics['timing']['train_seconds']:.1f}s)")
    print(f"run folder: {run_dir}  (model: {run_dir}/model)")
    return 0


def cmd_pretrain(args) -> int:
    from .._fs import check_new_folder
    from ..data.files import read_texts
    from ..data.imdb import is_imdb_source, read_imdb, resolve_source
    from ..text.word_vectors import pretrain

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

