"""Crash-safe file writing: everything is written under a temporary name, then renamed."""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import hashlib
import json
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from .errors import OutputError


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def fingerprint(texts: Iterable[str], *parts: str) -> str:
    """SHA-256 hex digest of some settings (``parts``) and a corpus: the key of a cache entry
    that is valid only for exactly these texts."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(part.encode())
    for text in texts:
        digest.update(text.encode("utf-8", errors="replace"))
        digest.update(b"\0")
    return digest.hexdigest()


def umask() -> int:
    """The process's umask (read by setting and restoring it)."""
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def _new_mode(target: Path, default: int) -> int:
    """Mode for a file or folder about to replace ``target``: the existing one's, else ``default``
    less the umask (0644 / 0755 under umask 022), as ordinary tools do."""
    try:
        return stat.S_IMODE(os.stat(target).st_mode)
    except OSError:
        return default & ~umask()


def _fail(path: Path, exc: OSError, what: str = "cannot write") -> OutputError:
    return OutputError(f"{path}: {what} ({exc.strerror or exc})")


# /dev/stdout, /dev/fd/1, /proc/self/fd/1 …: a file descriptor of this process
_FD_PATH = re.compile(r"^/(?:dev|proc/self|proc/thread-self|proc/(\d+))/fd/(\d+)$")


def own_fd(path: str | os.PathLike[str]) -> int | None:
    """The file descriptor of this process that ``path`` names (``/dev/stdout``, ``/dev/fd/1``,
    ``/proc/self/fd/1``, or a link to one), else None. Such a path is written through the
    descriptor, never renamed over: it may be a pipe, a socket, a deleted file, or a file the
    shell opened for appending (``>> log``)."""
    text = os.path.abspath(path)
    for _ in range(40):  # links to links, as the kernel allows
        match = _FD_PATH.match(text)
        if match:
            pid = match.group(1)
            return int(match.group(2)) if pid is None or int(pid) == os.getpid() else None
        if not os.path.islink(text):
            return None
        text = os.path.normpath(os.path.join(os.path.dirname(text), os.readlink(text)))
    return None


def is_stream(path: str | os.PathLike[str]) -> bool:
    """A FIFO, device, socket or a descriptor of this process: written through, never replaced."""
    if own_fd(path) is not None:
        return True
    try:
        mode = os.stat(path).st_mode
    except OSError:
        return False
    return not stat.S_ISREG(mode) and not stat.S_ISDIR(mode)


def _is_input(real: Path, source: str | os.PathLike[str]) -> bool:
    """Whether writing ``real`` would overwrite ``source`` (``-``: standard input), or write
    inside it when it is a folder (a model, a folder of class folders)."""
    if str(source) == "-":
        try:
            return os.path.samestat(os.fstat(0), os.stat(real))
        except OSError:
            return False
    try:
        if os.path.samefile(source, real):
            return True
    except OSError:
        pass
    folder = Path(os.path.realpath(source))
    return folder.is_dir() and real.is_relative_to(folder)


def resolve_output(final: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None] = ()) -> Path:
    """Where writing ``final`` really goes: symlinks are followed (never replaced). Refuses a folder,
    and an output that is one of ``inputs`` (the same file by any name: links included; ``-`` is
    standard input) or lies inside an input folder (a model's own files)."""
    final = Path(final)
    if is_stream(final):  # /dev/stdout, a FIFO, a device: written through, whatever links lead there
        return final
    real = Path(os.path.realpath(final))
    if real.is_dir():
        raise OutputError(f"{final}: is a folder; give a file name")
    for source in inputs:
        if source is not None and _is_input(real, source):
            what = ("standard input" if str(source) == "-" else
                    f"inside the input folder {source}" if Path(source).is_dir() else f"the input file {source}")
            raise OutputError(f"{final}: is {what}; write the results to another file")
    return real


def check_writable(final: str | os.PathLike[str], inputs: Iterable[str | os.PathLike[str] | None] = (),
                   folder: bool = False) -> Path:
    """Fail early, before any long work, if ``final`` cannot be written: see :func:`resolve_output`
    (``folder``: ``final`` is a folder to create or replace), and the nearest existing parent must
    be a writable folder."""
    if folder:
        real = Path(os.path.realpath(final))
        if real.exists() and not real.is_dir():
            raise OutputError(f"{final}: exists and is not a folder")
        for source in inputs:
            if source is not None and str(source) != "-" and Path(os.path.realpath(source)).is_relative_to(real):
                raise OutputError(f"{final}: holds the input {source}; write into another folder")
    else:
        real = resolve_output(final, inputs)
        if is_stream(real):
            return real
    parent = real.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise OutputError(f"{final}: cannot be created ({parent} is not a folder)")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise OutputError(f"{final}: cannot write in {parent} (read-only or no permission)")
    return real


def check_new_folder(path: str | os.PathLike[str], flag: str, inputs: Iterable[str | os.PathLike[str] | None] = (),
                     overwrite: bool = False, overwriting: str = "replace the folder and everything in it") -> Path:
    """A folder a command writes (word vectors, an export, a run): refuse one that is a file,
    holds an input, or already holds anything unless ``overwrite`` (which would ``overwriting``)."""
    real = check_writable(path, inputs, folder=True)
    if not overwrite and real.is_dir() and any(real.iterdir()):
        shown = sorted(p.name for p in real.iterdir())
        raise OutputError(f"{path}: folder is not empty ({', '.join(shown[:3])}{', …' if len(shown) > 3 else ''}); "
                          f"choose a new {flag}, or add --overwrite to {overwriting}")
    return real


def _is_or_holds(real: Path, place: Callable[[], Path]) -> str | None:
    """``"is"`` if ``real`` is the folder ``place()`` gives, ``"holds"`` if that folder lies inside
    it, else None (also when ``place`` cannot tell: a deleted working folder, no home)."""
    try:
        folder = Path(os.path.realpath(place()))
    except (OSError, RuntimeError, KeyError):
        return None
    return "is" if folder == real else "holds" if folder.is_relative_to(real) else None


def check_save_folder(path: str | os.PathLike[str], overwrite: bool, owned: Callable[[Path], bool],
                      what: str = "a saved model") -> Path:
    """Where a ``save(path)`` may write its folder (the real path; nothing is touched): a new
    folder, or an existing empty one. A folder that ``owned`` recognises (it holds ``what``) is
    replaced only with ``overwrite``. Anything else is refused whatever ``overwrite`` says: a
    file, a symbolic link, a FIFO or device, another non-empty folder, the working folder, the
    home folder, the root, or a folder holding one of them."""
    given = Path(path)
    try:
        mode = os.lstat(given).st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise _fail(given, exc, "cannot save here") from exc
    if mode is not None and stat.S_ISLNK(mode):
        raise OutputError(f"{given}: is a symbolic link; give the folder itself (a link is never replaced)")
    if mode is not None and not stat.S_ISDIR(mode):
        raise OutputError(f"{given}: exists and is not a folder; give a new or empty folder")
    real = Path(os.path.realpath(given))
    if real == real.parent:
        raise OutputError(f"{given}: is the root folder; give a new or empty folder")
    for place, name in ((Path.cwd, "the current working folder"), (Path.home, "your home folder")):
        relation = _is_or_holds(real, place)
        if relation:
            raise OutputError(f"{given}: {relation} {name}; give a new or empty folder (e.g. {given / 'model'})")
    if mode is None:
        return real
    try:
        entries = sorted(entry.name for entry in os.scandir(real))
    except OSError as exc:
        raise _fail(given, exc, "cannot read the folder") from exc
    if not entries:
        return real
    if not owned(real):
        shown = ", ".join(entries[:3]) + (", …" if len(entries) > 3 else "")
        raise OutputError(f"{given}: folder is not empty ({shown}) and holds no {what.removeprefix('a ')}; "
                          f"give a new or empty folder (overwrite=True replaces only {what})")
    if not overwrite:
        raise OutputError(f"{given}: holds {what}; pass overwrite=True to replace it, or give another folder")
    return real


@contextlib.contextmanager
def _naming(final: Path) -> Iterator[None]:
    """An OSError without a file name while writing (disk full, a broken device) names ``final``."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None and not isinstance(exc, BrokenPipeError):
            raise _fail(final, exc) from exc
        raise


def _pipe_or_device(fd: int) -> bool:
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return stat.S_ISFIFO(mode) or stat.S_ISCHR(mode)


def _through_fd(fd: int) -> Iterator[Path]:
    """Yield a temporary file; on success copy it to descriptor ``fd`` where it stands (appending
    after what is there, as the shell's ``>>`` asked), without opening its path again."""
    handle, tmp = tempfile.mkstemp(prefix=".reviewsense.", suffix=".tmp")
    os.close(handle)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        import sys

        sys.stdout.flush()  # what this process printed before comes first
        with open(tmp_path, "rb") as src, os.fdopen(os.dup(fd), "wb") as dst:
            shutil.copyfileobj(src, dst)
    finally:
        tmp_path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it into place only on success.

    A symlink is followed (its target is replaced, the link stays); a FIFO or a device is
    yielded as it is and written through (``/dev/stdout``, a named pipe); a folder is refused.
    The new file gets the mode of the file it replaces, else 0666 less the umask.
    """
    final = Path(final)
    real = resolve_output(final)
    fd = own_fd(final)
    if fd is not None and not _pipe_or_device(fd):
        with _naming(final):
            yield from _through_fd(fd)  # a file behind stdout (``> f``, ``>> f``), a socket: never renamed over
        return
    if is_stream(real):
        with _naming(final):
            yield real
        return
    try:
        real.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _fail(real.parent, exc, "cannot create the folder") from exc
    try:
        handle, tmp = tempfile.mkstemp(prefix=f".{real.name[:120]}.", suffix=".tmp", dir=real.parent)
    except OSError as exc:
        raise _fail(final, exc) from exc
    os.close(handle)
    tmp_path = Path(tmp)
    try:
        os.chmod(tmp_path, _new_mode(real, 0o666))
        with _naming(final):
            yield tmp_path
        with open(tmp_path, "rb+") as fh:
            os.fsync(fh.fileno())
        os.replace(tmp_path, real)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def write_bytes(path: str | os.PathLike[str], data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike[str], text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike[str], obj: Any) -> None:
    write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, allow_nan=False) + "\n")


def _exchange(a: Path, b: Path) -> bool:
    """Atomically swap two paths with renameat2(RENAME_EXCHANGE); False if unsupported."""
    libc_name = ctypes.util.find_library("c")
    if not libc_name:
        return False
    libc = ctypes.CDLL(libc_name, use_errno=True)
    fn = getattr(libc, "renameat2", None)
    if fn is None:
        return False
    at_fdcwd, rename_exchange = -100, 2
    rc = fn(at_fdcwd, os.fsencode(a), at_fdcwd, os.fsencode(b), rename_exchange)
    return rc == 0


def _remove(path: Path) -> None:
    """Remove ``path`` whatever it is (a folder, a file, a link); nothing if it is not there."""
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


_TEMP_SUFFIX = re.compile(r"\.[a-z0-9_]{8}\.tmp")  # tempfile's random part, then our suffix


def remove_temporaries(folder: Path, files: Iterable[str], folders: Iterable[str] = ()) -> list[str]:
    """Remove what a killed :func:`atomic_path` or :func:`atomic_dir` left in ``folder`` for the
    given names: ``.NAME.XXXXXXXX.tmp`` (a file or a folder), and ``.NAME.old`` for the
    ``folders`` (atomic_dir's fallback). Never a link, nor any other name. Returns the names removed."""
    names = set(files) | set(folders)
    removed = []
    for entry in sorted(folder.iterdir()) if folder.is_dir() else ():
        text = entry.name
        ours = any(text.startswith(f".{name}.") and (_TEMP_SUFFIX.fullmatch(text[len(name) + 1:]) is not None
                                                     or (text == f".{name}.old" and name in folders))
                   for name in names)
        if ours and not entry.is_symlink() and (entry.is_dir() or entry.is_file()):
            _remove(entry)
            removed.append(text)
    return removed


@contextlib.contextmanager
def atomic_dir(final: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield an empty temporary directory; on success it replaces ``final`` atomically.

    A crash at any point leaves either the previous ``final`` (intact) or the new one,
    never a half-written directory under the final name.
    """
    given = Path(final)
    final = Path(os.path.realpath(given))  # a symlink to a folder: the folder is replaced, the link stays
    if final.exists() and not final.is_dir():
        raise OutputError(f"{given}: exists and is not a folder")
    try:
        final.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{final.name}.", suffix=".tmp", dir=final.parent))
    except OSError as exc:
        raise _fail(given, exc) from exc
    try:
        os.chmod(tmp, _new_mode(final, 0o777))
        yield tmp
        file_mode, dir_mode = 0o666 & ~umask(), 0o777 & ~umask()
        for child in tmp.rglob("*"):  # whatever wrote them (safetensors: 0600), modes follow the umask
            if child.is_file() and not child.is_symlink():
                os.chmod(child, file_mode)
                with open(child, "rb") as fh:
                    os.fsync(fh.fileno())
            elif child.is_dir() and not child.is_symlink():
                os.chmod(child, dir_mode)
        if final.exists() and _exchange(tmp, final):
            shutil.rmtree(tmp)  # tmp now holds the previous version
        else:
            if final.exists():
                old = final.with_name(f".{final.name}.old")
                _remove(old)  # a killed save's leftover
                os.replace(final, old)
                os.replace(tmp, final)
                _remove(old)
            else:
                os.replace(tmp, final)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
