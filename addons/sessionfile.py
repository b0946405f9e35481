"""Keep session.json current without making the proxy wait for the disk.

Each label change used to rewrite the whole file on the proxy's event loop; with many phases that
took 150-200 ms per marker request. Here a change only takes a snapshot (a shallow copy: phase
entries are replaced, never changed in place) and a worker thread serialises and writes it, to a
temporary file renamed over session.json (readers never see half a file). While one write runs,
further changes coalesce into one more write of the newest state. A failure is reported (once
per distinct error) and never stops flow recording: every flow carries its labels anyway.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def snapshot(doc: dict[str, Any]) -> dict[str, Any]:
    """A copy safe to serialise in another thread while the recorder goes on changing `doc`."""
    return {**doc, "phases": list(doc.get("phases") or [])}


def write_json_atomically(path: Path, doc: dict[str, Any]) -> None:
    """Write `doc` to a temporary file beside `path` and rename it over `path` (mode 0600)."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with os.fdopen(fd, "w") as fo:
            json.dump(doc, fo, indent=1)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


class SessionFile:
    """session.json for one capture directory, written off the event loop."""

    def __init__(self, path: Path, on_error: Callable[[str], None]) -> None:
        self.path = path
        self.on_error = on_error
        self.lock = threading.Lock()  # one writer at a time: the worker thread or flush()
        self.pending: dict[str, Any] | None = None
        self.busy = False
        self.last_error: str | None = None
        self.writes = 0

    def update(self, doc: dict[str, Any]) -> None:
        """Have `doc` written soon; returns at once when an event loop runs."""
        self.pending = snapshot(doc)
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush()
            return
        if not self.busy:
            self.busy = True
            loop.run_in_executor(None, self._drain, loop)

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            while True:
                with self.lock:
                    doc, self.pending = self.pending, None
                    if doc is None:
                        return
                    error = self._write(doc)
                if error:
                    loop.call_soon_threadsafe(self._report, error)
        finally:
            self.busy = False
            if self.pending is not None:  # arrived between the last check and now
                loop.call_soon_threadsafe(self._restart, loop)

    def _restart(self, loop: asyncio.AbstractEventLoop) -> None:
        if not self.busy and self.pending is not None:
            self.busy = True
            loop.run_in_executor(None, self._drain, loop)

    def flush(self, doc: dict[str, Any] | None = None) -> None:
        """Write now, in this thread (at shutdown, or without an event loop)."""
        with self.lock:
            doc = snapshot(doc) if doc is not None else self.pending
            self.pending = None
            if doc is None:
                return
            error = self._write(doc)
        if error:
            self._report(error)

    def _write(self, doc: dict[str, Any]) -> str | None:
        try:
            write_json_atomically(self.path, doc)
        except (OSError, TypeError, ValueError) as exc:
            return f"cannot write {self.path}: {exc}"
        self.writes += 1
        self.last_error = None
        return None

    def _report(self, error: str) -> None:
        if error != self.last_error:
            self.last_error = error
            self.on_error(error)
