"""``reviewsense predict`` and ``explain``: probabilities for texts, and why."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator

from ..errors import ConfigError


def cmd_predict(args) -> int:
    from .._fs import check_writable, write_text
    from ..export import load_model
    from ..prediction.io import gather_texts, output_format, render_table, result_rows

    if args.texts and args.input:
        raise ConfigError("give texts as arguments or with --input, not both")
    if args.spark is not None:
        return _predict_spark(args)
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
    if args.threshold is None:
        args.threshold = 0.5
    elif not model.binary:
        raise ConfigError(f"--threshold is for two-class models; this one has {model.n_classes} classes "
                          f"({', '.join(model.class_names)}) and labels each text with its top class: leave it out")
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
    from ..prediction.stream import Chunk, read_chunks, score_file, score_to_path

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


def _predict_spark(args) -> int:
    """``--spark MASTER``: a Spark job from --input to --output (a new folder of part files)."""
    from ..spark import score_path

    if args.texts or args.input in (None, "-") or args.output in (None, "-"):
        raise ConfigError("--spark scores a file into a new folder: give --input PATH and --output PATH (no texts "
                          "as arguments, no stdin or stdout)")
    if args.workers != 1:
        raise ConfigError("--workers is for one machine; with --spark, Spark runs a task per partition (set the "
                          "executors' cores instead)")
    rows = score_path(args.spark or None, args.model, args.input, args.output, text_col=args.text_column,
                      keep=args.keep_columns or [], threshold=args.threshold, fmt=args.format, sep=args.sep,
                      encoding=args.encoding)
    print(f"wrote {rows:,} predictions to {args.output}", file=sys.stderr)
    return 0


def cmd_explain(args) -> int:
    from ..export import load_model

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
        of = "" if explanation.target is None else f" of '{model.class_names[explanation.target]}'"
        print(f"  logit{of} {explanation.logit:+.3f} = bias {explanation.bias:+.3f} + the contributions below and "
              "smaller ones")
        width = max([len(f) for f, _ in up] + [10])
        print(f"  {'pushed up':<{width + 9}}  pushed down")
        for j in range(max(len(up), len(down))):
            left = f"{up[j][1]:+8.3f} {up[j][0]:<{width}}" if j < len(up) else " " * (width + 9)
            right = f"{down[j][1]:+8.3f} {down[j][0]}" if j < len(down) else ""
            print(f"  {left}  {right}".rstrip())
    return 0

