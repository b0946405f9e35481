"""Keep session.json current without making the proxy wait for the disk.

Each label change used to rewrite the whole file on the proxy's event loop; with many phases that
took 150-200 ms per marker request. Here a change only takes a snapshot (a shallow copy: phase
entries are replaced, never changed in place) and a worker thread serialises and writes it, to a
temporary file renamed over session.json (readers never see half a file). While one write runs,
further changes coalesce into one more write of the newest state (handed over under a lock, so
none is lost, and never an older state over a newer one). A failure is reported (once
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
    """session.json for one capture directory, written off the event loop.

    Two locks: `state` guards the hand-over (`pending`, `busy`, the sequence numbers) and is held
    for a few instructions only, so the event loop never waits for the disk; `lock` lets one
    writer at a time (the worker thread or flush()) touch the file. Every snapshot is numbered and
    an older one is never written over a newer one (a worker still holding a snapshot when done()
    flushes the final state skips it). `idle` is set whenever nothing is waiting to be written:
    the completion signal for whoever needs the file current (tests, shutdown).
    """

    def __init__(self, path: Path, on_error: Callable[[str], None]) -> None:
        self.path = path
        self.on_error = on_error
        self.lock = threading.Lock()  # one writer at a time: the worker thread or flush()
        self.state = threading.Lock()  # guards pending, busy, seq (never held across I/O)
        self.pending: tuple[int, dict[str, Any]] | None = None
        self.busy = False
        self.seq = 0  # number of the newest snapshot taken
        self.written_seq = 0  # number of the newest snapshot on disk (or given up on)
        self.idle = threading.Event()
        self.idle.set()
        self.last_error: str | None = None
        self.writes = 0

    def _take(self, doc: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Number a snapshot of `doc` as the newest (call with `state` held)."""
        self.seq += 1
        return self.seq, snapshot(doc)

    def update(self, doc: dict[str, Any]) -> None:
        """Have `doc` written soon; returns at once when an event loop runs."""
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.flush(doc)
            return
        with self.state:
            self.pending = self._take(doc)
            self.idle.clear()
            if self.busy:  # the running worker takes it: it looks for `pending` before it stops
                return
            self.busy = True
        loop.run_in_executor(None, self._drain, loop)

    def _drain(self, loop: asyncio.AbstractEventLoop) -> None:
        """Worker thread: write the newest pending snapshot until none is left."""
        try:
            while True:
                with self.state:
                    item, self.pending = self.pending, None
                    if item is None:  # decided under `state`: an update now starts a new worker
                        self.busy = False
                        self.idle.set()
                        return
                error = self._write_newer(*item)
                if error:
                    with contextlib.suppress(RuntimeError):  # the loop closed: shutdown reports it
                        loop.call_soon_threadsafe(self._report, error)
        except BaseException:
            with self.state:
                self.busy = False
                if self.pending is None:
                    self.idle.set()
            raise

    def flush(self, doc: dict[str, Any] | None = None) -> None:
        """Write now, in this thread (at shutdown, or without an event loop): `doc`, or what is pending."""
        with self.state:
            item = self._take(doc) if doc is not None else self.pending
            self.pending = None
            if not self.busy:
                self.idle.set()
        if item is None:
            return
        error = self._write_newer(*item)
        if error:
            self._report(error)

    def _write_newer(self, seq: int, doc: dict[str, Any]) -> str | None:
        """Write snapshot `seq` unless a newer one is already on disk."""
        with self.lock:
            if seq <= self.written_seq:
                return None
            self.written_seq = seq
            return self._write(doc)

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
