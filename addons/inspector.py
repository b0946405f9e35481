"""Live inspection: classify each flow as it passes so mitmweb shows leaks as they happen.

Runs the same decoder and classifier as `phonehome analyze` on each finished request and puts a
one-line summary into `flow.comment`; flows carrying identifiers or URLs are marked. Any failure is
logged and swallowed: inspection must never break the phone's traffic.

Off the proxy's event loop. With the recorder (addons/recorder.py) the inspector has a feed: a flow
the recorder hands to its writer process is inspected there, after being written, so the proxy
hands each flow over once (addons/dumpwriter.py). Otherwise the response hook only schedules, with
`loop.call_soon`, the hand-off for after the response has gone back to the phone; the hand-off turns
the flow into a small record and gives it to a worker process (`python inspector.py FD --worker`,
started with the proxy, or when first needed if there is a feed). The worker, like the writer,
inspects in the pauses of the traffic (childproc.QUIET). When a summary comes
back the comment and mark are set and mitmweb is told (one update per 50 ms for all flows
annotated in it).
Where no worker can run (no event loop, a frozen mitmproxy build, Windows, option
`phonehome_inspect_worker=false`), when the worker has died, or when it is more than MAX_PENDING
flows behind, the flow is inspected in the proxy process instead, also after the response has been
sent. Either way the comment is set after the recorder saved the flow, so it is not part of
flows.mitm; `phonehome analyze` recomputes everything from the request anyway.

Work per flow is bounded: live decoding uses LIVE_LIMITS, tighter than the analyser's, and a request
body over MAX_LIVE_BODY bytes is not decoded live at all (the summary says so; `phonehome analyze`
decodes it). Endpoint classification is cached per (host, app). Option `phonehome_inspect` (default
true) turns inspection off.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import os
import pickle
import select
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from types import SimpleNamespace

from mitmproxy import ctx, http
from mitmproxy.addonmanager import traverse
from mitmproxy.hooks import UpdateHook

from phonehome.addons.childproc import MAX_DELAY, QUIET, start_child, yield_to_the_proxy
from phonehome.analysis.classify import classify_endpoint, classify_request
from phonehome.analysis.decode import decode_request
from phonehome.analysis.decode.model import Limits
from phonehome.analysis.records import HttpRecord, Labels
from phonehome.analysis.sources.mitm import LABEL_KEY, http_record

log = logging.getLogger(__name__)

LEAK_TYPES_MARK = ":warning:"
MAX_LIVE_BODY = 1024 * 1024  # larger request bodies are left to `phonehome analyze`
LIVE_LIMITS = Limits(
    max_decompressed_bytes=4 * 1024 * 1024,
    max_fields=2_000,
    max_nesting=32,
    max_protobuf_bytes=64 * 1024,
    max_value_chars=64 * 1024,
)
MAX_PENDING = 2_000  # flows handed to the worker and not answered yet; beyond: inspect in-process
UPDATE_DELAY = 0.05  # seconds over which annotated flows are gathered into one UpdateHook
REPLY_BATCH = 64  # summaries per reply, at most
_FRAME = struct.Struct("!I")


@functools.lru_cache(maxsize=4096)
def _endpoint(host: str, app: str | None):
    return classify_endpoint(host, app)


def live_record(flow: http.HTTPFlow) -> tuple[HttpRecord, int]:
    """The flow's request as a record, and the size of a body too large to decode live (else 0)."""
    record = http_record(flow, "live", Labels())
    skipped = len(record.request_body)
    if skipped > MAX_LIVE_BODY:
        record.request_body = b""
        return record, skipped
    return record, 0


def request_payload(flow: http.HTTPFlow) -> tuple[tuple, int]:
    """What the worker needs to rebuild the flow's request record (cheap to take and to pickle:
    building the record itself costs the proxy several times more), and the size of a body too large
    to decode live (else 0). The response is left out: nothing in a summary depends on it."""
    state = flow.request.get_state()
    skipped = len(state["content"] or b"")
    if skipped > MAX_LIVE_BODY:
        state["content"] = b""
    else:
        skipped = 0
    labels = flow.metadata.get(LABEL_KEY)
    return (
        state,
        flow.client_conn.sni if flow.client_conn else None,
        flow.server_conn.peername if flow.server_conn else None,
        {LABEL_KEY: labels} if labels is not None else {},
        flow.id,
    ), skipped


def record_from_payload(payload: tuple) -> HttpRecord:
    """The record `http_record` makes of the flow `request_payload` was taken from (sans response)."""
    state, sni, peername, metadata, flow_id = payload
    flow = SimpleNamespace(
        request=http.Request.from_state(state),
        response=None,
        client_conn=SimpleNamespace(sni=sni),
        server_conn=SimpleNamespace(peername=peername),
        metadata=metadata,
        id=flow_id,
    )
    return http_record(flow, "live", Labels())  # type: ignore[arg-type]


def summarise_record(record: HttpRecord, skipped: int = 0) -> tuple[str, bool]:
    """One-line summary of what a request carries, and whether it should be marked."""
    endpoint = _endpoint(record.host, record.labels.app)
    findings = classify_request(record, decode_request(record, LIVE_LIMITS), endpoint, None)
    note = f"request body of {skipped} bytes not inspected live" if skipped else ""
    if not findings:
        return (f"phonehome: {note}" if note else ""), False
    types = sorted({f.data_type for f in findings})
    owner = endpoint.owner or endpoint.site
    summary = f"phonehome: {', '.join(types)} -> {owner} ({endpoint.category}, {endpoint.party} party)"
    return (f"{summary}; {note}" if note else summary), True


def summarise(flow: http.HTTPFlow) -> tuple[str, bool]:
    """One-line summary of what a flow's request carries, and whether it should be marked."""
    return summarise_record(*live_record(flow))


class Worker:
    """A child process answering batches of (key, payload, skipped) with (key, summary, mark, error).

    Length-prefixed pickles over a socketpair. Records are gathered for BATCH_DELAY and sent as one
    batch, answered as one batch: waking the other process for every flow costs the proxy more than
    pickling the flow does. The proxy side never blocks: what the socket does not take at once waits
    in `outgoing` (written when the socket is writable), replies are read by a loop reader. The
    child exits when the socket closes, also when the proxy is killed.
    """

    BATCH_DELAY = 0.02  # seconds
    MAX_BATCH_BYTES = 1024 * 1024  # a batch holding this much request body is sent at once
    MAX_OUTGOING = 16 * 1024 * 1024

    def __init__(self, loop: asyncio.AbstractEventLoop, on_result, on_dead) -> None:
        self.loop, self.on_result, self.on_dead = loop, on_result, on_dead
        ours, self.proc = start_child("phonehome.addons.inspector", ["--worker"])
        self.sock: socket.socket | None = ours
        self.batch: list[tuple[int, tuple, int]] = []
        self.batch_bytes = 0
        self.batch_timer: asyncio.TimerHandle | None = None
        self.outgoing = bytearray()
        self.incoming = bytearray()
        try:
            loop.add_reader(ours, self._readable)
        except BaseException:  # e.g. the loop is closed: no socket or child is left behind
            self.close()
            raise

    def submit(self, key: int, payload: tuple, skipped: int) -> bool:
        """Queue one request_payload; False (nothing queued) if the worker is gone or too far behind."""
        if self.sock is None or len(self.outgoing) > self.MAX_OUTGOING:
            return False
        self.batch.append((key, payload, skipped))
        self.batch_bytes += len(payload[0]["content"] or b"")
        if self.batch_bytes >= self.MAX_BATCH_BYTES:
            self.send_batch()
        elif self.batch_timer is None:
            self.batch_timer = self.loop.call_later(self.BATCH_DELAY, self.send_batch)
        return True

    def send_batch(self) -> None:
        if self.batch_timer is not None:
            self.batch_timer.cancel()
            self.batch_timer = None
        batch, self.batch, self.batch_bytes = self.batch, [], 0
        if not batch or self.sock is None:
            return
        payload = pickle.dumps(batch, protocol=pickle.HIGHEST_PROTOCOL)
        frame = _FRAME.pack(len(payload)) + payload
        if self.outgoing:
            self.outgoing += frame
            return
        try:
            sent = self.sock.send(frame)
        except (BlockingIOError, InterruptedError):
            sent = 0
        except OSError:
            self._dead()
            return
        if sent < len(frame):
            self.outgoing += frame[sent:]
            self.loop.add_writer(self.sock, self._writable)

    def _writable(self) -> None:
        if self.sock is None:
            return
        try:
            sent = self.sock.send(self.outgoing)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            self._dead()
            return
        del self.outgoing[:sent]
        if not self.outgoing:
            self.loop.remove_writer(self.sock)

    def _readable(self) -> None:
        if self.sock is None:
            return
        try:
            data = self.sock.recv(1 << 18)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:
            self._dead()
            return
        self.incoming += data
        while len(self.incoming) >= _FRAME.size:
            (size,) = _FRAME.unpack_from(self.incoming)
            if len(self.incoming) < _FRAME.size + size:
                break
            replies = pickle.loads(self.incoming[_FRAME.size : _FRAME.size + size])
            del self.incoming[: _FRAME.size + size]
            for reply in replies:
                self.on_result(*reply)

    def _dead(self) -> None:
        self.close()
        self.on_dead()

    def close(self) -> None:
        if self.batch_timer is not None:
            self.batch_timer.cancel()
            self.batch_timer = None
        if self.sock is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.sock)
                self.loop.remove_writer(self.sock)
            self.sock.close()
            self.sock = None
        try:
            self.proc.wait(timeout=0.2)  # it exits on end-of-file, unless busy with a large request
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def worker_main(fd: int) -> None:
    """The worker process: read records, answer summaries, until the proxy closes the socket.

    Like the recorder's writer, it works in the pauses of the traffic (childproc.QUIET,
    MAX_DELAY): batches are taken in as they come, and records inspected once no batch has come
    for QUIET seconds, or MAX_DELAY seconds after the backlog started; a batch coming in the
    middle of the work interrupts it until then."""
    yield_to_the_proxy()
    with socket.socket(fileno=fd) as sock:
        _answer_batches(sock)


def _answer_batches(sock: socket.socket) -> None:
    incoming = bytearray()
    backlog: collections.deque[tuple[int, tuple, int]] = collections.deque()
    replies: list[tuple[int, str, bool, str]] = []
    last_batch = behind_since = 0.0  # when a batch last came; when the backlog started
    while True:
        if backlog:  # a pause, or MAX_DELAY since the backlog started (a steady stream never pauses)
            due = min(last_batch + QUIET, behind_since + MAX_DELAY)
            timeout: float | None = max(0.0, due - time.monotonic())
        else:
            timeout = None
        if select.select([sock], [], [], timeout)[0]:
            if replies and not _send_replies(sock, replies):
                return
            try:
                data = sock.recv(1 << 18)
            except OSError:
                return
            if not data:
                return
            incoming += data
            last_batch = time.monotonic()
            if not backlog:
                behind_since = last_batch
            while len(incoming) >= _FRAME.size:
                (size,) = _FRAME.unpack_from(incoming)
                if len(incoming) < _FRAME.size + size:
                    break
                backlog.extend(pickle.loads(incoming[_FRAME.size : _FRAME.size + size]))
                del incoming[: _FRAME.size + size]
            continue
        key, payload, skipped = backlog.popleft()  # a pause: one record, then look again
        try:
            summary, mark = summarise_record(record_from_payload(payload), skipped)
            error = ""
        except Exception as exc:  # reported back and logged there
            summary, mark, error = "", False, f"{type(exc).__name__}: {exc}"
        replies.append((key, summary, mark, error))
        if (not backlog or len(replies) >= REPLY_BATCH) and not _send_replies(sock, replies):
            return


def _send_replies(sock: socket.socket, replies: list) -> bool:
    """Send the summaries made so far as one frame (and forget them); False if the proxy is gone."""
    reply = pickle.dumps(replies, protocol=pickle.HIGHEST_PROTOCOL)
    replies.clear()
    try:
        sock.sendall(_FRAME.pack(len(reply)) + reply)
    except OSError:
        return False
    return True


class Inspector:
    """Annotates flows with what they send; never raises into mitmproxy."""

    def __init__(self) -> None:
        self.worker: Worker | None = None
        self.worker_failed = False
        self.pending: dict[int, http.HTTPFlow] = {}
        self.next_key = 0
        self.dirty: list[http.HTTPFlow] = []
        self.update_timer: asyncio.TimerHandle | None = None
        # set by the recorder: True when it takes the flow, to have it inspected in its writer process
        self.feed: Callable[[http.HTTPFlow], bool] | None = None
        self.enabled = True  # option phonehome_inspect, kept here: read for every flow
        self.off_loop = True  # option phonehome_inspect_worker: false keeps inspection in the proxy
        self.stopped = False

    def load(self, loader) -> None:
        loader.add_option("phonehome_inspect", bool, True, "Annotate flows live with what they send.")
        loader.add_option(
            "phonehome_inspect_worker",
            bool,
            True,
            "Run live inspection in a separate process, off the proxy's event loop.",
        )

    def configure(self, updated: set[str]) -> None:
        if "phonehome_inspect" in updated:
            self.enabled = ctx.options.phonehome_inspect
        if "phonehome_inspect_worker" in updated:
            self.off_loop = ctx.options.phonehome_inspect_worker

    def running(self) -> None:
        if self.feed is not None:
            return  # the feed inspects; a worker of our own starts if a flow ever needs one
        with contextlib.suppress(Exception):  # start the worker before the first flow needs it
            if ctx.options.phonehome_inspect:
                self._worker(asyncio.get_running_loop())

    def done(self) -> None:
        self.stopped = True
        if self.worker is not None:
            self.worker.close()
            self.worker = None
        if self.update_timer is not None:
            self.update_timer.cancel()
            self.update_timer = None
        self.pending.clear()

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.metadata.get("phonehome_marker") or not self.enabled:
            return
        try:
            loop = asyncio.get_running_loop()
        except Exception:  # no running loop (unit use): inspect inline
            self.inspect(flow, False)
            return
        if self.feed is not None and self.off_loop:
            try:
                if self.feed(flow):
                    return  # inspected where the recorder writes it; deliver() brings the summary
            except Exception as exc:
                log.debug(f"phonehome inspector: feed failed: {type(exc).__name__}: {exc}")
        loop.call_soon(self._hand_off, flow, loop)  # after the response has gone back to the phone

    def inspect_later(self, flow: http.HTTPFlow) -> None:
        """For a flow the feed took but could not have inspected: our own route, after this turn."""
        if self.stopped or not self.enabled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            self.inspect(flow, False)
            return
        loop.call_soon(self._hand_off, flow, loop)

    def deliver(self, flow: http.HTTPFlow, summary: str, mark: bool, error: str) -> None:
        """A summary made elsewhere (the worker, the feed's writer process): annotate the flow."""
        if error:
            log.debug(f"phonehome inspector: {error}")
        try:
            self.annotate(flow, summary, mark, not self.stopped)
        except Exception as exc:
            log.debug(f"phonehome inspector: {type(exc).__name__}: {exc}")

    def _hand_off(self, flow: http.HTTPFlow, loop: asyncio.AbstractEventLoop) -> None:
        """Give the flow to the worker process, or inspect it here when there is none."""
        try:
            worker = self._worker(loop)
            if worker is not None and len(self.pending) < MAX_PENDING:
                payload, skipped = request_payload(flow)
                key = self.next_key = self.next_key + 1
                if worker.submit(key, payload, skipped):
                    self.pending[key] = flow
                    return
        except Exception as exc:  # falls back to inspecting here, which logs what goes wrong
            log.debug(f"phonehome inspector: worker hand-off failed: {type(exc).__name__}: {exc}")
        loop.call_soon(self.inspect, flow, True)

    def _worker(self, loop: asyncio.AbstractEventLoop) -> Worker | None:
        if not ctx.options.phonehome_inspect_worker:
            if self.worker is not None:
                self._stop_worker()
            return None
        if self.worker is None and not self.worker_failed:
            if getattr(sys, "frozen", False) or os.name != "posix":
                self.worker_failed = True
                return None
            try:
                self.worker = Worker(loop, self._result, self._worker_died)
            except Exception as exc:
                self.worker_failed = True
                log.warning(f"phonehome inspector: no worker process ({exc}); inspecting in the proxy")
        return self.worker

    def _stop_worker(self) -> None:
        """Close the worker and inspect in-process whatever it had not answered."""
        worker, self.worker = self.worker, None
        if worker is not None:
            worker.close()
        flows, self.pending = list(self.pending.values()), {}
        for flow in flows:
            asyncio.get_running_loop().call_soon(self.inspect, flow, True)

    def _worker_died(self) -> None:
        log.warning("phonehome inspector: worker process stopped; inspecting in the proxy from now on")
        self.worker_failed = True
        self._stop_worker()

    def _result(self, key: int, summary: str, mark: bool, error: str) -> None:
        flow = self.pending.pop(key, None)
        if flow is not None:
            self.deliver(flow, summary, mark, error)

    def inspect(self, flow: http.HTTPFlow, notify: bool = False) -> None:
        """Classify one flow here and annotate it; exceptions are logged, never raised."""
        try:
            summary, mark = summarise(flow)
        except Exception as exc:  # inspection must never break traffic
            log.debug(f"phonehome inspector: {type(exc).__name__}: {exc}")
            return
        self.annotate(flow, summary, mark, notify)

    def annotate(self, flow: http.HTTPFlow, summary: str, mark: bool, notify: bool) -> None:
        if summary:
            flow.comment = (flow.comment + "\n" if flow.comment else "") + summary
        if mark:
            flow.marked = LEAK_TYPES_MARK
        if notify and (summary or mark):
            self.dirty.append(flow)
            if self.update_timer is None:
                try:
                    self.update_timer = asyncio.get_running_loop().call_later(UPDATE_DELAY, self._updated)
                except RuntimeError:
                    self._updated()

    def _updated(self) -> None:
        """Tell mitmweb (any `update` addon) about the flows annotated since the last time. Without
        one (mitmdump), nobody is told: looking costs a tenth of triggering the hook on every addon."""
        self.update_timer = None
        flows, self.dirty = self.dirty, []
        if not flows:
            return
        try:
            addons = ctx.master.addons
            if any(callable(getattr(a, "update", None)) for a in traverse(addons.chain)):
                addons.trigger(UpdateHook(flows))
        except Exception as exc:
            log.debug(f"phonehome inspector: update failed: {exc}")


addons = [Inspector()]

if __name__ == "__main__" and sys.argv[2:3] == ["--worker"]:
    worker_main(int(sys.argv[1]))
