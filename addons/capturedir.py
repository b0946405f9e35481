"""The capture directory on disk: private, locked to one proxy, and watched while recording.

- Directories phonehome creates are 0700 whatever the umask (`mkdir(parents=True, mode=...)`
  applies the mode to the last component only, and the umask to all of them).
- One proxy per session: a second one would append to the same flows.mitm and overwrite the
  other's phases in session.json. `SessionLock` holds an flock on `<session>/.lock` for as long
  as the recorder records there; the kernel drops it when the proxy dies, however it dies.
- A dump written through a descriptor keeps "working" after its directory was deleted: the
  writes go to an unlinked file and are lost at close. `dump_problem` tells that (and a replaced
  or unwritable directory) from a cheap fstat/stat, and `read_back` recovers what was written
  to the unlinked file since the last good check (Linux: through /proc/self/fd).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path

try:
    import fcntl
except ImportError:  # Windows: no flock; the session is not locked there
    fcntl = None  # type: ignore[assignment]

LOCK_NAME = ".lock"


def make_private_dirs(path: Path) -> None:
    """Create `path` and any missing parents with mode 0700 (exactly, not masked)."""
    missing = []
    current = path
    while not current.exists():
        missing.append(current)
        if current.parent == current:
            break
        current = current.parent
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o700)
        os.chmod(directory, 0o700)
    if not missing:
        os.chmod(path, 0o700)  # the session directory itself is private in any case


class SessionLocked(Exception):
    """Another proxy records this session."""


class SessionLock:
    """An exclusive flock on `<session>/.lock`, holding the owner's pid for the message."""

    def __init__(self, directory: Path) -> None:
        self.path = directory / LOCK_NAME
        self.fd: int | None = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        if fcntl is None:
            return
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as exc:
            owner = ""
            with contextlib.suppress(OSError, ValueError):
                owner = f" (pid {int(os.pread(self.fd, 32, 0).split()[0])})"
            os.close(self.fd)
            self.fd = None
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise SessionLocked(
                    f"session {directory} is being recorded by another proxy{owner}; stop it or choose"
                    " another session name"
                ) from None
            raise
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, f"{os.getpid()}\n".encode(), 0)

    def release(self) -> None:
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)  # closing drops the flock
            self.fd = None


def dump_problem(fd: int, path: Path) -> str | None:
    """Why flows written to `fd` would not end up in `path` (deleted, replaced), or None."""
    held = os.fstat(fd)
    if held.st_nlink == 0:
        if not path.parent.exists():
            return f"the capture directory {path.parent} was deleted"
        return f"{path} was deleted"
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return f"{path} was moved away"
    if (named.st_dev, named.st_ino) != (held.st_dev, held.st_ino):
        return f"{path} was replaced by another file"
    return None


def read_back(fd: int, start: int) -> bytes:
    """What was written to the dump behind `fd` from byte `start` on (also when it is unlinked);
    b"" where the system offers no way to read a write-only descriptor's file (no /proc)."""
    try:
        held = os.fstat(fd)
        if not stat.S_ISREG(held.st_mode) or held.st_size <= start:
            return b""
        with open(f"/proc/self/fd/{fd}", "rb") as fo:
            fo.seek(start)
            return fo.read(held.st_size - start)
    except OSError:
        return b""
