"""Crash-safe file writes: write beside the target, fsync, ``os.replace``, fsync the directory.

Readers see the old file or the new one, never a torn one. Every durable file of prefloop
(datasets, the feature cache, checkpoints handed from trainer to reward service) goes through
these helpers.

Two details make the files usable and durable:

- The temporary file is created with mode ``0o666`` and the process umask applied by the kernel
  (0644 under the usual umask 022), like any file ``open(..., "w")`` creates. ``mkstemp``'s 0600
  would survive the rename and lock out a training pod that runs as another user.
- After the rename the parent directory is fsynced: the rename is an update of the directory,
  and until the directory reaches the disk a power cut can bring the old file back.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

_CREATE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)


def _create_beside(path: Path) -> Path:
    """A new, empty, uniquely named file next to ``path``, mode 0o666 minus the umask."""
    for _ in range(100):
        candidate = path.parent / f".{path.name}.{secrets.token_hex(6)}.tmp"
        try:
            fd = os.open(candidate, _CREATE_FLAGS, 0o666)
        except FileExistsError:
            continue
        os.close(fd)
        return candidate
    raise FileExistsError(f"{path.parent}: no free temporary file name for {path.name}")


def fsync_dir(path: Path) -> None:
    """Flush a directory's entries (renames, new files) to disk.

    Why: ``os.replace`` changes the directory, not the file; without this a crash can undo it.
    Platforms that cannot open a directory (Windows) are skipped silently.
    """
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextmanager
def atomic_target(path: Path) -> Iterator[Path]:
    """A temporary path beside ``path`` that replaces it (fsynced) only if the block succeeds.

    Why: one way to write every durable file, so none can be half-written, unreadable by other
    users (the mode follows the umask) or lost by a crash after the rename (directory fsync).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _create_beside(path)
    try:
        yield tmp
        with tmp.open("rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` atomically."""
    with atomic_target(path) as tmp:
        tmp.write_bytes(data)


def atomic_write_text(path: Path, text: str) -> None:
    """Replace ``path`` with UTF-8 ``text`` atomically (no newline translation)."""
    atomic_write_bytes(path, text.encode("utf-8"))
