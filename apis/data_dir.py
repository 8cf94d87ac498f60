"""The data directory (``STRATUM_DATA_DIR``) is private to the account Stratum runs as.

It holds the dev issuer's signing key and client secrets, the CRM events secret and the run database (whose
checkpoints carry customer data), so the directory is 0700 and every file Stratum creates in it is 0600,
whatever the umask. Everything that creates the directory or a file in it goes through here.
"""

from __future__ import annotations

import contextlib
import os
import stat
from pathlib import Path

__all__ = ["private_dir", "private_file", "write_private_file"]

_SQLITE_COMPANIONS = ("-wal", "-shm", "-journal")


def private_dir(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` as 0700 if missing; take group and other access away if it already exists (a
    directory made by an older Stratum, or by hand, with the umask's 0755)."""
    directory = Path(path)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    mode = stat.S_IMODE(directory.stat().st_mode)
    if mode & 0o077:
        # Not ours to change (another account owns it): leave it; the files in it are still 0600.
        with contextlib.suppress(PermissionError):
            directory.chmod(mode & 0o700)
    return directory


def write_private_file(path: Path, data: bytes) -> None:
    """Write a new file, 0600 from the moment it exists; ``FileExistsError`` if another process wrote it
    first."""
    private_dir(path.parent)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def private_file(path: Path, *, sqlite: bool = False) -> Path:
    """Make ``path`` exist as a 0600 file (empty if new) before a library opens it with its own mode.

    SQLite creates its ``-wal``, ``-shm`` and ``-journal`` files with the database file's mode, so an 0600
    database keeps them private too; with ``sqlite``, ones left by an older Stratum are tightened as well.
    """
    private_dir(path.parent)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    for candidate in (path, *(Path(f"{path}{suffix}") for suffix in (_SQLITE_COMPANIONS if sqlite else ()))):
        with contextlib.suppress(FileNotFoundError, PermissionError):
            if stat.S_IMODE(candidate.stat().st_mode) & 0o077:
                candidate.chmod(0o600)
    return path
