"""Safe file output: nothing half-written, nothing the user did not ask to overwrite. stdlib only.

- Every output goes to a temporary name in the same folder and is renamed over the final name
  once complete (rename is atomic on POSIX file systems): a crash or a power cut never leaves
  a half-written file that looks valid.
- Output paths are checked before the work starts (`check_output_file`, `check_output_dir`):
  an existing file is refused unless the caller allows overwriting, an output is never one
  of the command's inputs, a folder is never where a file is expected, and the place must be
  writable. Minutes of work are never spent on a result that cannot be saved.
- Temporary files carry the writer's PID (`.name.tmp-<pid>-<n>.ext`), so files left by a killed
  process can be told from those of a running one and removed (`remove_stale_temp_files`).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import itertools
import os
import re
import stat
import threading
from collections.abc import Iterable, Iterator
from pathlib import Path

from .errors import OutOfSpace, ParameterError, UserError, is_out_of_space

TEMP_NAME = re.compile(r"^\..+\.tmp-(\d+)(?:-\d+)?(\.[^.]*)?$")
_TEMP_SERIAL = itertools.count()  # two threads writing the same name never share a temp file
_NO_LINK_LOCK = threading.Lock()


def read_regular_file(
    path: str | Path, what: str, max_bytes: int, error: type[UserError] = UserError, folder_hint: str = ""
) -> bytes:
    """The bytes of `path`, a regular file of at most `max_bytes`: a folder, a device or a pipe
    (or a link to one) is refused before it is opened, so nothing waits on a FIFO or reads
    /dev/zero; refusals are `error`s naming the file as `what` ("model file")."""
    path = Path(path)
    try:
        info = path.stat()
    except FileNotFoundError:
        raise error(f"{path}: no such {what}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    if stat.S_ISDIR(info.st_mode):
        raise error(f"{path}: is a folder, not a {what}{folder_hint}")
    if not stat.S_ISREG(info.st_mode):
        raise error(f"{path}: not a {what} (a device or a pipe)")
    if info.st_size > max_bytes:
        raise error(f"{path}: {info.st_size / 1e6:.1f} MB, more than a {what} may be ({max_bytes / 1e6:g} MB at most)")
    try:
        with open(path, "rb") as handle:
            # As many bytes as the file had, and one more: read(n) sets n bytes aside at once.
            data = handle.read(info.st_size + 1)
    except OSError as exc:
        raise error(f"{path}: cannot read ({exc.strerror})") from None
    if len(data) > info.st_size:
        raise error(f"{path}: grew while it was read (still being written?)")
    return data


# What a file system takes (Linux's, and most others): a name of at most 255 bytes, a path of
# at most 4,096. Every name hh makes keeps within them.
MAX_NAME_BYTES, MAX_PATH_BYTES = 255, 4096


def _name_bytes(name: str) -> int:
    return len(name.encode("utf-8", "surrogateescape"))


def unusable_path(path: Path) -> str | None:
    """Why no file can have this path (a name or the whole path longer than a file system
    takes: stat() would say 'File name too long'), or None."""
    if any(_name_bytes(part) > MAX_NAME_BYTES for part in path.parts):
        return f"has a name longer than {MAX_NAME_BYTES} bytes: no file can have it"
    if _name_bytes(str(path)) > MAX_PATH_BYTES:
        return f"makes a path longer than {MAX_PATH_BYTES} bytes: no file can have it"
    return None


def temp_name_for(path: Path) -> Path:
    # Keep the suffix: Keras wants ".keras", matplotlib infers the format from it.
    tail = f".tmp-{os.getpid()}-{next(_TEMP_SERIAL)}{path.suffix}"
    stem = path.stem
    if _name_bytes(f".{stem}{tail}") > MAX_NAME_BYTES:
        # A name near the limit (a 245-character photo name) has no room for the temporary
        # marks: a shortened stem and a digest of the whole keep it unique and within it.
        digest = hashlib.sha256(stem.encode("utf-8", "surrogateescape")).hexdigest()[:12]
        room = max(MAX_NAME_BYTES - _name_bytes(tail) - len(digest) - 2, 0)
        stem = stem.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore") + "-" + digest
    return path.with_name(f".{stem}{tail}")


@contextlib.contextmanager
def atomic_path(path: str | Path, sync: bool = True) -> Iterator[Path]:
    """Yield a temporary path to write; on success it replaces `path`, on error it is removed.

    A full disk (or a file-size limit) becomes OutOfSpace, naming the file: the old `path`, if
    any, is still there untouched. sync=False skips the fsync, for files that are cheap to
    make again (a synthetic data set): still never half-written, only not power-cut proof.
    """
    path = Path(path)
    tmp = temp_name_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        yield tmp
        if sync:
            with open(tmp, "rb+") as handle:
                os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if is_out_of_space(exc):
            raise OutOfSpace(f"no space left to write {path} ({exc.strerror})") from None
        raise
    finally:
        if tmp.exists():
            tmp.unlink()


def atomic_write_bytes(path: str | Path, data: bytes, sync: bool = True) -> Path:
    with atomic_path(path, sync=sync) as tmp:
        tmp.write_bytes(data)
    return Path(path)


def atomic_write_text(path: str | Path, text: str) -> Path:
    return atomic_write_bytes(path, text.encode("utf-8"))


def numbered(path: Path, n: int) -> Path:
    """`stem-n.ext`, the stem cut short where the name would pass MAX_NAME_BYTES."""
    tail = f"-{n}{path.suffix}"
    room = max(MAX_NAME_BYTES - _name_bytes(tail), 1)
    stem = path.stem.encode("utf-8", "surrogateescape")[:room].decode("utf-8", "ignore")
    return path.with_name(f"{stem}{tail}")


def create_new(path: str | Path, data: bytes, sync: bool = True) -> Path:
    """Write `data` as a new file at `path`, or, when that name is taken (by anything, a
    dangling link included), at `stem-1.ext`, `stem-2.ext`, ...: never replacing a file,
    even with several writers at once. Returns the path written. Atomic like atomic_path.
    """
    path = Path(path)
    staged = temp_name_for(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(staged, "wb") as handle:
            handle.write(data)
            if sync:
                handle.flush()
                os.fsync(handle.fileno())
        for n in range(100_000):
            candidate = path if n == 0 else numbered(path, n)
            if _claim(staged, candidate):
                if sync:
                    _sync_folder(candidate.parent)
                return candidate
    except OSError as exc:
        if is_out_of_space(exc):
            raise OutOfSpace(f"no space left to write {path} ({exc.strerror})") from None
        raise
    finally:
        staged.unlink(missing_ok=True)
    raise OutOfSpace(f"no free name for {path}")  # 100,000 files of one name: treat it as full


def _claim(staged: Path, target: Path) -> bool:
    """Give `staged` the name `target` unless that name exists; False when it does."""
    try:
        os.link(staged, target)  # fails if the name exists, atomically: no race with another writer
    except FileExistsError:
        return False
    except OSError as exc:
        if exc.errno not in (errno.EPERM, errno.ENOTSUP, errno.EOPNOTSUPP):
            raise
        # No hard links here (a FAT-formatted SD card): check, then rename. Another writer of
        # this process holds the same lock, so only another process could race in between.
        with _NO_LINK_LOCK:
            if os.path.lexists(target):
                return False
            os.rename(staged, target)
            return True
    staged.unlink()
    return True


def _sync_folder(folder: Path) -> None:
    """fsync a folder, so a new name in it survives a power cut (where the OS allows it)."""
    try:
        handle = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(handle)
    except OSError:
        pass
    finally:
        os.close(handle)


def publish(staged: Path, target: Path, overwrite: bool) -> None:
    """Give a finished temporary file its real name. Without overwrite, a file that took that
    name meanwhile (another process making the same output) is never replaced."""
    if overwrite:
        os.replace(staged, target)
    elif not _claim(staged, target):
        staged.unlink(missing_ok=True)
        raise ParameterError(
            "out", f"{target} was written by another process meanwhile; choose another name or add {{param:overwrite}}"
        )


def atomic_link_or_copy(source: Path, target: Path) -> None:
    """Make `target` a copy of `source` atomically: a hard link when possible (free, and a
    later write to either name makes a new file, never changes the other), else a byte copy."""
    with atomic_path(target) as tmp:
        try:
            os.link(source, tmp)
        except OSError:
            tmp.write_bytes(source.read_bytes())


def is_within(path: Path, folder: Path) -> bool:
    """True when `path` is `folder` or lies below it (after resolving symlinks)."""
    try:
        path.resolve().relative_to(folder.resolve())
    except ValueError:
        return False
    return True


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.exists() and b.exists() and os.path.samefile(a, b)
    except OSError:
        return False


def _writable_parent(path: Path, param: str) -> None:
    """The nearest existing ancestor of `path` must be a writable folder."""
    ancestor = path.absolute().parent
    while not ancestor.exists():
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise ParameterError(param, f"{path}: {ancestor} is a file, not a folder")
    if not os.access(ancestor, os.W_OK | os.X_OK):
        raise ParameterError(param, f"{path}: cannot write in {ancestor} (permission denied)")


def check_output_file(
    path: str | Path,
    param: str,
    overwrite: bool = False,
    inputs: Iterable[str | Path] = (),
    append: bool = False,
) -> Path:
    """Refuse an output file path before any work is done; return it as a Path.

    overwrite: an existing file may be replaced. append: an existing file is added to (the
    caller checks its content). Otherwise an existing file is refused: the user's file is safe.
    """
    path = Path(path)
    for source in inputs:
        source = Path(source)
        if _same_file(path, source) or path.absolute() == source.absolute():
            raise ParameterError(param, f"{path} is also an input of this command ({source}); choose another file")
    if path.is_dir():
        raise ParameterError(param, f"{path} is a folder; give a file name")
    if os.path.lexists(path) and not (overwrite or append):  # a dangling link is taken too
        raise ParameterError(param, f"{path} already exists; choose another name or add {{param:overwrite}} to replace it")
    if path.exists() and not os.access(path, os.W_OK):
        raise ParameterError(param, f"{path}: cannot write (permission denied)")
    _writable_parent(path, param)
    return path


def check_output_dir(path: str | Path, param: str) -> Path:
    """A folder to write into: must be a folder (or creatable) and writable."""
    path = Path(path)
    if path.is_symlink() and not path.exists():
        raise ParameterError(param, f"{path} is a broken link (to {os.readlink(path)})")
    if path.exists() and not path.is_dir():
        raise ParameterError(param, f"{path} is a file, not a folder")
    if path.is_dir():
        if not os.access(path, os.W_OK | os.X_OK):
            raise ParameterError(param, f"{path}: cannot write (permission denied)")
    else:
        _writable_parent(path, param)
    return path


def check_not_inside(path: str | Path, folders: Iterable[tuple[str, str | Path | None]], param: str) -> None:
    """Refuse an output folder inside an input folder (`folders`: (what, folder) pairs).

    Writing a run or cache folder into a training folder would make it a new class.
    """
    for what, folder in folders:
        if folder is not None and is_within(Path(path), Path(folder)):
            raise ParameterError(param, f"{path} is inside the {what} {folder}; write it somewhere else")


def pid_alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def remove_stale_temp_files(folder: str | Path, recursive: bool = True) -> list[Path]:
    """Remove temporary files in (recursive: below) `folder` left by processes that no longer run."""
    removed: list[Path] = []
    folder = Path(folder)
    if not folder.is_dir():
        return removed
    for path in (folder.rglob if recursive else folder.glob)(".*.tmp-*"):
        match = TEMP_NAME.match(path.name)
        if match and path.is_file() and not pid_alive(int(match.group(1))):
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
