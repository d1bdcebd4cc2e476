"""Files the connector creates hold patients' data, keys, tokens and the audit trail: they are
owner-only (0600, directories 0700) from the moment they exist, never created wider and
narrowed after. Files left wider by an older version are narrowed when next opened.

SQLite creates its ``-wal``, ``-shm`` and ``-journal`` files with the mode of the database
file, so the database file is created here, owner-only, before SQLite first opens it.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path
from typing import IO, Any

FILE_MODE = 0o600
DIR_MODE = 0o700


def private_dir(path: Path) -> None:
    """Create ``path`` and its missing parents owner-only (``mkdir(parents=True)`` would give
    the parents the default mode); narrow it if it is ours and wider."""
    missing = []
    parent = path
    while not parent.exists() and parent != parent.parent:
        missing.append(parent)
        parent = parent.parent
    for directory in reversed(missing):
        directory.mkdir(mode=DIR_MODE, exist_ok=True)
        narrow(directory, DIR_MODE)
    narrow(path, DIR_MODE)


def open_private(path: Path, mode: str = "w", *, exclusive: bool = False, **kw: Any) -> IO[Any]:
    """``open(path, mode)`` for writing, the file owner-only from its creation."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_EXCL if exclusive else 0)
    flags |= os.O_APPEND if "a" in mode else os.O_TRUNC
    fd = os.open(path, flags, FILE_MODE)
    try:
        _narrow_fd(fd)
        return os.fdopen(fd, mode, **kw)
    except BaseException:
        os.close(fd)
        raise


def private_sqlite(database: Path) -> None:
    """Create the SQLite database file owner-only before SQLite does (its journal files take
    its mode); narrow an existing one and its journal files."""
    fd = os.open(database, os.O_RDWR | os.O_CREAT, FILE_MODE)
    try:
        _narrow_fd(fd)
    finally:
        os.close(fd)
    for suffix in ("-wal", "-shm", "-journal"):
        narrow(database.with_name(database.name + suffix))


def narrow(path: Path, mode: int = FILE_MODE) -> None:
    """Make ``path`` owner-only if it is ours and wider (left by an older version)."""
    with contextlib.suppress(FileNotFoundError, PermissionError):
        info = path.stat()
        if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
            path.chmod(mode)


def _narrow_fd(fd: int) -> None:
    info = os.fstat(fd)
    if info.st_uid == os.geteuid() and stat.S_IMODE(info.st_mode) & 0o077:
        with contextlib.suppress(PermissionError):
            os.fchmod(fd, FILE_MODE)
