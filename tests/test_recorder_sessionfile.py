"""session.json written off the event loop: no change is lost, an older state never lands over a newer
one, and `idle` is a real completion signal (the disk is made slow to show what load does)."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from pathlib import Path

from phonehome.addons import sessionfile
from phonehome.addons.sessionfile import SessionFile
from tests.support_proxy import run_async


def _slow_disk(monkeypatch, seconds: float) -> None:
    real = sessionfile.write_json_atomically

    def slow(path: Path, doc: dict) -> None:
        time.sleep(seconds)
        real(path, doc)

    monkeypatch.setattr(sessionfile, "write_json_atomically", slow)


@run_async
async def test_idle_means_the_newest_state_is_on_disk_even_when_the_disk_is_slow(tmp_path, monkeypatch):
    _slow_disk(monkeypatch, 0.05)
    sf = SessionFile(tmp_path / "session.json", lambda e: None)
    doc: dict = {"phases": []}
    for i in range(50):
        doc["phases"] = [*doc["phases"], {"phase": i}]
        sf.update(doc)  # returns at once: the event loop never waits for the disk
    assert not sf.idle.is_set()
    assert not (tmp_path / "session.json").exists()  # what a reader polling the file could meet
    assert await asyncio.to_thread(sf.idle.wait, 30)
    assert json.loads((tmp_path / "session.json").read_text())["phases"][-1] == {"phase": 49}
    assert 1 <= sf.writes < 50  # changes made while a write ran were coalesced


class _FlushFirst:
    """SessionFile.lock, except that a worker thread gets the file only after the main thread (where
    done() runs) has flushed: the one interleaving that could put an older state over the final one."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.worker_waiting = threading.Event()
        self.flushed = threading.Event()

    def __enter__(self) -> None:
        if threading.current_thread() is not threading.main_thread():
            self.worker_waiting.set()
            self.flushed.wait(10)
        self.lock.acquire()

    def __exit__(self, *exc: object) -> None:
        self.lock.release()
        if threading.current_thread() is threading.main_thread():
            self.flushed.set()


@run_async
async def test_a_worker_holding_an_older_state_never_writes_it_over_the_final_flush(tmp_path):
    sf = SessionFile(tmp_path / "session.json", lambda e: None)
    sf.lock = gate = _FlushFirst()  # type: ignore[assignment]
    sf.update({"phases": [{"phase": "old"}]})  # the worker takes this state, then waits for the file
    assert await asyncio.to_thread(gate.worker_waiting.wait, 10)
    sf.flush({"phases": [{"phase": "final"}]})  # done() at shutdown, on the loop's thread
    assert await asyncio.to_thread(sf.idle.wait, 10)
    assert json.loads((tmp_path / "session.json").read_text())["phases"] == [{"phase": "final"}]
    assert sf.writes == 1  # the older state was skipped, not written after


def test_without_an_event_loop_update_writes_at_once(tmp_path):
    sf = SessionFile(tmp_path / "session.json", lambda e: None)
    sf.update({"phases": [{"phase": "a"}]})
    assert sf.idle.is_set() and sf.writes == 1
    assert json.loads((tmp_path / "session.json").read_text())["phases"] == [{"phase": "a"}]


@run_async
async def test_a_write_error_is_reported_once_and_the_writer_goes_idle(tmp_path):
    errors: list[str] = []
    (tmp_path / "session.json").mkdir()  # nothing can be renamed over it
    sf = SessionFile(tmp_path / "session.json", errors.append)
    for i in range(3):
        sf.update({"phases": [{"phase": i}]})
        assert await asyncio.to_thread(sf.idle.wait, 10)
        await asyncio.sleep(0.01)  # the report is delivered on the loop
    assert len(errors) == 1 and "cannot write" in errors[0]
