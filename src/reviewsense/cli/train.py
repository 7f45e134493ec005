"""``reviewsense train`` and ``reviewsense pretrain``: the whole job into a run folder, word vectors."""

from __future__ import annotations

from typing import Any

from ..errors import ConfigError
from .parser import build_parser, flag_dest


def family_flags() -> dict[str, list[str]]:
    """Every family flag of ``train`` → the families that read it (from the registry)."""
    from .parser import family_flags as flags

    return {flag: [name for name, _ in readers] for flag, readers in flags().items()}


def _given(args, flag: str) -> bool:
    value = getattr(args, flag_dest(flag), None)
    return value is not None and value is not False


def _check_family_flags(args, trained: list[str], what: str) -> None:
    """Refuse a flag that the families being trained would silently ignore (``--model seed --C 0.01``)."""
    for flag, readers in family_flags().items():
        if _given(args, flag) and not set(trained) & set(readers):
            names = ", ".join(f"--model {r}" for r in readers if r != "ensemble")
            raise ConfigError(f"{flag} applies to {names}, not to {what}")


def _settings(args, trained: list[str]) -> dict[str, dict[str, Any]]:
    """Each trained family's parameters set by flags (a flag of a boolean sets the opposite of its default)."""
    from .parser import family_flags as flags

    settings: dict[str, dict[str, Any]] = {}
    for flag, readers in flags().items():
        if not _given(args, flag):
            continue
        for name, spec in readers:
            if name in trained:
                value = getattr(args, flag_dest(flag))
                settings.setdefault(name, {})[spec.name] = (not spec.default) if spec.type is bool else value
    return settings


def cmd_train(args) -> int:
    from ..pipeline import DataSpec, TrainConfig, resume_config, train

    if args.resume:
        plain = vars(build_parser().parse_args(["train"]))
        given = sorted(f"--{k.replace('_', '-')}" for k, v in vars(args).items() if k not in ("resume", "command")
                       and v != plain.get(k))
        if given:
            raise ConfigError(f"--resume takes every setting from {args.resume}/config.json; drop {', '.join(given)}")
        config = resume_config(args.resume)
        return _report(train(config, resume=True), config.run_dir)

    if args.preset and args.model != "nblinear":
        raise ConfigError(f"--preset {args.preset} builds its own models; drop --model {args.model}")
    if args.members and not args.preset:
        raise ConfigError("--members chooses the families of --preset best; add --preset best")
    if args.model == "seed" and (args.embedding or "").startswith("sentence:"):  # the seed head over an encoder
        args.model, args.encoder, args.embedding = "sentence", args.embedding.removeprefix("sentence:"), None
    config = TrainConfig(
        run_dir=args.run_dir,
        data=DataSpec(path=args.data, test_path=args.test_data, text_column=args.text_column,
                      label_column=args.label_column, classes=args.classes, validation_size=args.validation_size,
                      test_size=args.test_size, allow_download=not args.no_download,
                      group_column=args.group_column, random_split=args.random_split, stratify=args.stratify,
                      sep=args.sep,
                      encoding=args.encoding),
        model=args.model,
        length_calibration=not args.no_length_calibration,
        seed=args.seed,
        n_jobs=args.threads,
        class_weight=args.class_weight,
        preset=args.preset,
        spark=args.spark,
    )
    members = _preset_members(args.members) if args.preset else None
    if members:
        config.settings = {"ensemble": {"members": members}}
    trained = config.families
    what = f"--preset {args.preset} ({' + '.join(members or [])})" if args.preset else f"--model {args.model}"
    _check_family_flags(args, trained, what)
    config.settings = _settings(args, trained) | ({"ensemble": {"members": members}} if members else {})
    if config.spark is not None:
        from ..spark_train import train as train_on_spark

        return _report(train_on_spark(config, overwrite=args.overwrite), args.run_dir)
    return _report(train(config, overwrite=args.overwrite), args.run_dir)


def _preset_members(asked: list[str] | None) -> list[str]:
    """``--preset best``'s families: those asked for; else nblinear + the transformer when torch
    sees a GPU, nblinear + cnn when it does not (fine-tuning a transformer on a CPU takes hours
    on IMDB), saying which and why."""
    from ..progress import log

    if asked:
        return asked
    try:
        import torch

        gpu = torch.cuda.is_available()
    except ImportError:
        gpu = False
    if gpu:
        log("--preset best: nblinear + transformer (torch sees a GPU)")
        return ["nblinear", "transformer"]
    log("--preset best: nblinear + cnn (no GPU: the transformer would take hours on a CPU; "
        "--members nblinear,transformer asks for it anyway)")
    return ["nblinear", "cnn"]


def _report(metrics: dict, run_dir: str) -> int:
    from ..evaluation.metrics import is_multiclass

    if not metrics:  # a torchrun process other than rank 0: rank 0 reports
        return 0
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
    print(f"run folder: {run_dir}  (model: {run_dir}/model; per-class metrics: README.md, confusion.png)")
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

