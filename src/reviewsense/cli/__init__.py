"""The ``reviewsense`` command: train | evaluate | predict | explain | serve | pretrain | data | info.

Results go to stdout, progress and logs to stderr. A bad input prints one line
``reviewsense: error: ...`` and exits with code 2."""

from __future__ import annotations

import signal
import sys
from collections.abc import Sequence

from .._ranks import is_main
from ..errors import Interrupted, ReviewsenseError, Terminated
from .evaluate import cmd_data, cmd_evaluate, cmd_info
from .parser import build_parser
from .predict import cmd_explain, cmd_predict
from .serve import cmd_serve
from .train import cmd_pretrain, cmd_train

__all__ = ["build_parser", "main"]


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
        from ..models.base import fix_surrogates

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
        if is_main():  # under torchrun, rank 0 says it for all
            print(f"reviewsense: {exc}", file=sys.stderr)
        return exc.exit_code
    except ReviewsenseError as exc:
        print(f"reviewsense: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except Terminated:  # under torchrun a rank may get the launcher's SIGTERM after the ranks agreed to stop:
        if is_main():   # rank 0 says it for all (as for Interrupted)
            print("reviewsense: terminated", file=sys.stderr)
        return 128 + signal.SIGTERM
    except KeyboardInterrupt:
        if is_main():
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

