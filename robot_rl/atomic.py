"""Durable, atomic writes for everything a user must not lose: checkpoints, bundles, datasets, eval results.

A file is written to a temporary name in the same folder, flushed and fsynced, renamed over the target, and the
folder is fsynced so the rename itself survives a power cut. A folder (a bundle, a dataset) is built beside its
target and swapped in with one `renameat2(RENAME_EXCHANGE)` where the kernel offers it, so the path never stops
existing while an older version is replaced; elsewhere the old folder is moved aside for the shortest possible
window and put back if the swap fails.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import functools
import os
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

_RENAME_EXCHANGE = 2
_AT_FDCWD = -100


def fsync_dir(folder: str | Path) -> None:
    """Make renames and creations inside `folder` durable (no-op where directories cannot be opened)."""
    try:
        fd = os.open(str(folder), os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def fsync_tree(folder: str | Path) -> None:
    """fsync every file and folder below `folder` (before it is renamed into place)."""
    for root, _dirs, files in os.walk(folder):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(root)


def write_file(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Atomically create or replace `path` with what `write(tmp_path)` writes: temp file, fsync, rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)
    fsync_dir(path.parent)
    return path


def write_text(path: str | Path, text: str) -> Path:
    """Atomically create or replace a text file."""
    return write_file(path, lambda tmp: tmp.write_text(text))


def write_bytes(path: str | Path, data: bytes) -> Path:
    """Atomically create or replace a binary file."""
    return write_file(path, lambda tmp: tmp.write_bytes(data))


@functools.cache
def _renameat2() -> Any:
    """libc's renameat2, looked up once (find_library runs ldconfig); None where the system has none."""
    libc_name = ctypes.util.find_library("c")
    if libc_name is None:
        return None
    fn = getattr(ctypes.CDLL(libc_name, use_errno=True), "renameat2", None)
    if fn is not None:
        fn.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint]
        fn.restype = ctypes.c_int
    return fn


def _exchange(a: Path, b: Path) -> bool:
    """Swap two existing paths in one step (Linux renameat2); False where the system cannot."""
    fn = _renameat2()
    if fn is None:
        return False
    if fn(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.ENOTSUP):
        return False
    raise OSError(err, os.strerror(err), str(b))


def replace_dir(built: str | Path, path: str | Path) -> Path:
    """Move the finished folder `built` (a sibling of `path`) to `path`, replacing any folder there; durable.

    The contents are fsynced first; the old folder is removed only after the new one is in place.
    """
    built, path = Path(built), Path(path)
    fsync_tree(built)
    if not path.exists():
        os.rename(built, path)
    elif _exchange(built, path):
        shutil.rmtree(built, ignore_errors=True)  # `built` now holds the old version
    else:
        old = path.with_name(f".{path.name}.old{os.getpid()}")
        shutil.rmtree(old, ignore_errors=True)
        os.rename(path, old)
        try:
            os.rename(built, path)
        except OSError:
            os.rename(old, path)
            raise
        shutil.rmtree(old, ignore_errors=True)
    fsync_dir(path.parent)
    return path
