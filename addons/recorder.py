"""Record a phone's traffic as a labelled phonehome capture (DESIGN.md "Recording").

Load with `mitmdump -s addons/recorder.py` (or mitmweb). Every finished flow is appended to
`<phonehome_dir>/<session>/flows.mitm` with one os.write of the bytes mitmproxy's own FlowWriter
produces for it (so the dump is exactly mitmproxy's format); restarting with the same session
appends. The response hook only queues the flow: it is handed on at the event loop's next turn,
after the response has gone back to the phone, to a writer process (addons/dumpwriter.py) as one
pickled datagram; option `phonehome_record_worker=false` writes in the proxy instead. So a killed
proxy loses the flows in flight and, if killed in the microseconds between a response and that
turn, the flow just answered (README, "Decisions"). WebSocket flows are saved when they end, with
their messages; raw TCP and UDP flows likewise. Requests to host `phonehome.mark` are answered by
the proxy (addons/markers.py: only the user's own navigation changes labels); they are never
forwarded and never written to flows.mitm. session.json is rewritten, off the event loop, only
when the labels change (addons/sessionfile.py). TLS handshakes the client refuses are written to
events.jsonl. Recording errors (e.g. a full disk) stop recording loudly but never stop proxying; a
flow cut short by one is cut off again, so the dump stays readable. A capture directory deleted
while recording is noticed within CHECK_EVERY seconds, reported, recreated and recording resumes
(addons/capturedir.py); a second proxy on the same session is refused. Registered here too: the
guard (addons/guard.py: no proxied access to the laptop, clients limited to the phone), the live
inspector (addons/inspector.py; its annotations arrive after the flow was written) and the
WireGuard QR code (addons/wgqr.py). The recorder is the inspector's feed: a flow handed to the
writer process is inspected there too, so the proxy hands each flow over once; a flow the writer
does not take is left to the inspector's own route.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
import time
import weakref
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from mitmproxy import command, ctx, dns, exceptions, http, tcp, tls, udp, version

from phonehome.addons import capturedir, markers
from phonehome.addons.dumprecord import flow_bytes
from phonehome.addons.dumpwriter import DumpWriter, Result, append_record
from phonehome.addons.guard import Guard
from phonehome.addons.inspector import Inspector
from phonehome.addons.sessionfile import SessionFile
from phonehome.addons.wgqr import WireGuardQR
from phonehome.analysis.labels import LABEL_KEY
from phonehome.analysis.modes import LabelError, clean_label, read_mode

log = logging.getLogger(__name__)

MARKER_HOST = markers.MARKER_HOST
_MARKER_BYTES = MARKER_HOST.encode()
LABEL_NAMES = markers.LABEL_NAMES
SCHEMA = 1
CHECK_EVERY = 0.5  # seconds between checks that flows.mitm is still where it belongs


def default_session() -> str:
    """A sortable, filesystem-safe session name for when the user gives none."""
    return datetime.now(UTC).strftime("session-%Y%m%d-%H%M%S")


def safe_name(name: str) -> str:
    """A session name usable as one directory name (no separators, no dot-dot)."""
    cleaned = "".join(c if c.isalnum() or c in "-_." else "_" for c in name).strip(".")
    return cleaned or default_session()


def is_marker(request: http.Request) -> bool:
    """Whether a request is for the marker host (its pretty_host). pretty_host parses and validates
    the Host header on every call, so first a cheap test that the name occurs anywhere it can come
    from (host, Host header, HTTP/2 authority)."""
    if (
        MARKER_HOST not in request.host.lower()
        and MARKER_HOST not in request.authority.lower()
        and not any(k.lower() == b"host" and _MARKER_BYTES in v.lower() for k, v in request.headers.fields)
    ):
        return False
    return request.pretty_host.lower() == MARKER_HOST


def parse_marker(path: str) -> tuple[str, str] | None:
    """`/mode/incognito` -> ("mode", "incognito"); None when the path sets nothing valid."""
    parsed = markers.parse(path)
    if parsed.key is None or parsed.value is None:
        return None
    return parsed.key, parsed.value


def label_value(key: str, raw: str | None) -> tuple[str | None, str | None]:
    """An option's or command's label value, normalised and bounded: (value, warning).

    Raises LabelError for a value that cannot be a label. Empty means "none" for app and phase.
    """
    if key == "mode":
        reading = read_mode(raw or "normal", where="phonehome_mode")
        return reading.mode, reading.warning
    if not raw:
        return None, None
    return clean_label(raw, what=key), None


def _tool_versions() -> dict[str, str]:
    try:
        own = importlib_metadata.version("phonehome")
    except importlib_metadata.PackageNotFoundError:
        own = "unknown"
    return {"phonehome": own, "mitmproxy": version.VERSION}


class Recorder:
    """Writes labelled flows, marker phases, session.json and events.jsonl."""

    def __init__(self, inspector: Inspector | None = None) -> None:
        self.inspector = inspector
        if inspector is not None:
            inspector.feed = self.take_inspection
        self.to_inspect: set[str] = set()  # ids of flows the inspector left to the writer process
        # handed to the writer, no summary back yet; held weakly: a flow nobody else keeps (mitmdump
        # drops each once it is done) has no one to show a summary to, and holding thousands while
        # the writer waits for a pause in the traffic costs the proxy's garbage collector
        self.inspecting: weakref.WeakValueDictionary[str, http.HTTPFlow] = weakref.WeakValueDictionary()
        self.labels: dict[str, Any] = {"session": "", "app": None, "mode": "normal", "phase": None}
        self.dir: Path | None = None
        self.fd: int | None = None  # flows.mitm, opened O_APPEND
        self.session_doc: dict[str, Any] = {}
        self.session_file: SessionFile | None = None
        self.failed: str | None = None
        self.written = 0
        self.writer: DumpWriter | None = None
        self.queued: list = []  # finished flows waiting for the next event-loop turn
        self.is_running = False  # the proxy is up: a writer process may be started
        self.lock: capturedir.SessionLock | None = None
        self.checked_size = 0  # flows.mitm's size at the last check that found it in place
        self.lost: str | None = None  # why flows.mitm is gone; recording resumes when it can
        self.unwritable_warned = False
        self.watch: asyncio.TimerHandle | None = None
        self.recovered = b""
        self.event_error: str | None = None
        self.dropped = 0  # finished flows not recorded because recording had stopped

    # -- options and lifecycle -------------------------------------------------------------
    def load(self, loader) -> None:
        loader.add_option("phonehome_dir", str, "captures", "Directory holding capture sessions.")
        loader.add_option("phonehome_session", str, "", "Session name (default: timestamped).")
        loader.add_option("phonehome_app", str, "", "Package name of the app under test.")
        loader.add_option("phonehome_mode", str, "normal", "Browsing mode label, e.g. incognito.")
        loader.add_option("phonehome_device", str, "", "Free-text description of the test phone.")
        loader.add_option(
            "phonehome_record_worker",
            bool,
            True,
            "Serialise and write flows in a separate process, off the proxy's event loop.",
        )

    def configure(self, updated: set[str]) -> None:
        changes = {}
        for key in ("app", "mode"):
            if f"phonehome_{key}" in updated:
                try:
                    changes[key], warning = label_value(key, getattr(ctx.options, f"phonehome_{key}"))
                except LabelError as exc:
                    raise exceptions.OptionsError(f"phonehome_{key}: {exc}") from None
                if warning:
                    log.warning(f"phonehome: {warning}")
        if "phonehome_dir" in updated or "phonehome_session" in updated or self.dir is None:
            self.labels.update(changes)  # the first phase starts with the options' labels
            self._open(ctx.options.phonehome_dir, ctx.options.phonehome_session or default_session())
        elif changes:
            self.set_labels(**changes)

    def running(self) -> None:
        self.is_running = True
        self._start_writer()
        self._schedule_check()

    def _schedule_check(self) -> None:
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            return
        self.watch = loop.call_later(CHECK_EVERY, self._periodic_check)

    def _periodic_check(self) -> None:
        try:
            self.check_capture()
        except Exception as exc:  # the watch must go on, and never break traffic
            log.error(f"phonehome: checking the capture directory failed: {type(exc).__name__}: {exc}")
        self._schedule_check()

    def check_capture(self) -> None:
        """Notice at once when flows.mitm stops being where the analysis will look for it
        (directory deleted, file moved or replaced): say RECORDING STOPPED, recover what went
        into the lost file since the last check, and resume in a recreated directory."""
        if self.dir is None:
            return
        if self.lost:
            self._resume()
            return
        if self.fd is None:
            return
        path = self.dir / "flows.mitm"
        problem = capturedir.dump_problem(self.fd, path)
        if problem:
            self._lose(problem)
            return
        self.checked_size = os.fstat(self.fd).st_size
        writable = os.access(self.dir, os.W_OK | os.X_OK)
        if not writable and not self.unwritable_warned:
            log.error(
                f"phonehome: the capture directory {self.dir} is not writable any more: flows still go to"
                " flows.mitm (it is open), but session.json and events.jsonl cannot be updated"
            )
        self.unwritable_warned = not writable

    def _say_dropped(self) -> None:
        if self.dropped:
            log.error(
                f"phonehome: {self.dropped} finished flows were NOT recorded while recording was stopped"
            )
            self.dropped = 0

    def _lose(self, problem: str) -> None:
        """flows.mitm is gone: stop, keep what the lost file received since the last check."""
        self.lost = problem
        self._write_queued()
        self._stop_writer()  # it drains into the lost file, which is read back below
        assert self.fd is not None
        self.recovered = capturedir.read_back(self.fd, self.checked_size)
        with contextlib.suppress(OSError):
            os.close(self.fd)
        self.fd = None
        log.error(f"phonehome: RECORDING STOPPED: {problem}. Recreating it to go on recording.")
        self._resume()

    def _resume(self) -> None:
        """Recreate the capture directory and a fresh flows.mitm; write back the recovered flows."""
        assert self.dir is not None
        try:
            capturedir.make_private_dirs(self.dir)
            self.fd = os.open(self.dir / "flows.mitm", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        except OSError as exc:
            if self.lost and not self.failed:
                self.failed = f"{self.lost}; cannot recreate it: {exc}"
                log.error(f"phonehome: RECORDING STOPPED: {self.failed}. Retrying every {CHECK_EVERY} s.")
            return
        recovered, self.recovered = self.recovered, b""
        try:
            if recovered:
                append_record(self.fd, recovered)
        except OSError as exc:
            log.error(f"phonehome: {len(recovered)} bytes of flows could not be written back: {exc}")
        if self.lock is None or not (self.dir / capturedir.LOCK_NAME).exists():
            with contextlib.suppress(OSError, capturedir.SessionLocked):
                if self.lock is not None:
                    self.lock.release()
                self.lock = capturedir.SessionLock(self.dir)
        self.checked_size = os.fstat(self.fd).st_size
        problem, self.lost, self.failed = self.lost, None, None
        self._say_dropped()
        self._write_session(now=True)
        self._start_writer()
        log.error(
            f"phonehome: RECORDING RESUMED in {self.dir / 'flows.mitm'} after: {problem}"
            f" ({len(recovered)} bytes written since the last check were recovered into it)."
        )

    def done(self) -> None:
        if self.watch is not None:
            self.watch.cancel()
            self.watch = None
        if self.fd is not None and self.dir is not None and not self.lost:
            with contextlib.suppress(OSError):
                if capturedir.dump_problem(self.fd, self.dir / "flows.mitm"):
                    self.check_capture()  # the last flows must not go into a lost file either
        self._write_queued()
        self._stop_writer()
        self._say_dropped()
        self._close_phase()
        if self.session_doc:  # cumulative over restarts: `phonehome record` reports it at the end
            self.session_doc["flows_written"] = self.session_doc.get("flows_written", 0) + self.written
            self.written = 0
        self._write_session(now=True)
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None
        if self.lock is not None:
            self.lock.release()
            self.lock = None

    def _open(self, base: str, session: str) -> None:
        if self.fd is not None:
            self.done()
        session = safe_name(session)
        self.dir = Path(base).expanduser() / session
        self.failed = None
        self.lost, self.recovered = None, b""
        try:
            capturedir.make_private_dirs(self.dir)
            self.lock = capturedir.SessionLock(self.dir)
        except capturedir.SessionLocked as exc:
            # an error logged at startup makes mitmproxy exit (its errorcheck addon), without a traceback
            self.failed = str(exc)
            log.error(f"phonehome: NOT RECORDING: {exc}")
            return
        except OSError as exc:
            self._fail(f"cannot open capture directory {self.dir}: {exc}")
            return
        try:
            path = self.dir / "flows.mitm"
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.chmod(path, 0o600)
            self.checked_size = os.fstat(self.fd).st_size
        except OSError as exc:
            self._fail(f"cannot open capture directory {self.dir}: {exc}")
            return
        self.labels["session"] = session
        self.session_doc = self._read_session(session)
        self.session_file = SessionFile(self.dir / "session.json", self._session_error)
        self._start_phase()
        log.info(f"phonehome: recording to {self.dir}")
        if self.is_running:
            self._start_writer()

    def _start_writer(self) -> None:
        """Hand serialising and writing to a child process where one can run (POSIX, not frozen)."""
        if self.writer is not None or self.fd is None or self.failed or self.dir is None:
            return
        if not ctx.options.phonehome_record_worker or os.name != "posix" or getattr(sys, "frozen", False):
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        try:
            self.writer = DumpWriter(
                self.dir / "flows.mitm",
                self.fd,
                self._fail,
                loop=loop,
                on_inspected=self._inspected,
                on_stopped=self._inspect_pending_elsewhere,
            )
        except Exception as exc:
            log.warning(f"phonehome: no writer process ({exc}); writing flows in the proxy")

    def _stop_writer(self) -> None:
        writer, self.writer = self.writer, None
        if writer is not None:
            writer.close()

    def _read_session(self, session: str) -> dict[str, Any]:
        assert self.dir is not None
        try:
            doc = json.loads((self.dir / "session.json").read_text())
            if isinstance(doc, dict) and isinstance(doc.get("phases"), list):
                doc["tool"] = _tool_versions()
                return doc
        except (OSError, ValueError):
            pass
        return {
            "schema": SCHEMA,
            "session": session,
            "created": time.time(),
            "device": {"description": ctx.options.phonehome_device} if ctx.options.phonehome_device else {},
            "phases": [],
            "tool": _tool_versions(),
        }

    # -- labels and phases -----------------------------------------------------------------
    def set_labels(self, source: str = "", **changes: Any) -> None:
        """Change labels for the flows that follow; each change starts a phase in session.json and
        is logged, with where it came from."""
        if all(self.labels.get(k) == v for k, v in changes.items()):
            return
        what = ", ".join(f"{k} {self.labels.get(k)!r} -> {v!r}" for k, v in changes.items())
        log.info(f"phonehome: labels changed{f' by {source}' if source else ''}: {what}")
        self._close_phase()
        self.labels.update(changes)
        self._start_phase()

    def _start_phase(self) -> None:
        if not self.session_doc:
            return
        name = "/".join(str(self.labels[k]) for k in ("mode", "phase") if self.labels.get(k))
        self.session_doc["phases"].append(
            {
                "name": name,
                "mode": self.labels["mode"],
                "app": self.labels["app"],
                "phase": self.labels["phase"],
                "start": time.time(),
                "end": None,
            }
        )
        self._write_session()

    def _close_phase(self) -> None:
        phases = self.session_doc.get("phases") or []
        if phases and phases[-1].get("end") is None:
            phases[-1] = {**phases[-1], "end": time.time()}  # replaced, not changed: see sessionfile

    def _write_session(self, now: bool = False) -> None:
        """Have session.json rewritten: off the event loop, or `now` (at shutdown)."""
        if self.session_file is None or not self.session_doc:
            return
        if now:
            self.session_file.flush(self.session_doc)
        else:
            self.session_file.update(self.session_doc)

    def _session_error(self, problem: str) -> None:
        log.error(
            f"phonehome: {problem}. Flows are still recorded, each with its labels; only the phase list"
            " in session.json is behind."
        )

    def _command(self, key: str, raw: str) -> None:
        try:
            value, warning = label_value(key, raw)
        except LabelError as exc:
            raise exceptions.CommandError(f"phonehome.{key}: {exc}") from None
        if warning:
            log.warning(f"phonehome: {warning}")
        self.set_labels(f"command phonehome.{key}", **{key: value})

    @command.command("phonehome.mode")
    def cmd_mode(self, mode: str) -> None:
        """Set the mode label (e.g. normal, incognito) for the flows that follow."""
        self._command("mode", mode)

    @command.command("phonehome.app")
    def cmd_app(self, app: str) -> None:
        """Set the app label (package name) for the flows that follow; empty for none."""
        self._command("app", app)

    @command.command("phonehome.phase")
    def cmd_phase(self, phase: str) -> None:
        """Set the phase label for the flows that follow; empty for none."""
        self._command("phase", phase)

    # -- flows -------------------------------------------------------------------------------
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if is_marker(flow.request):
            flow.metadata["phonehome_marker"] = True

    def request(self, flow: http.HTTPFlow) -> None:
        """Label every request; answer markers ourselves so they never leave the laptop."""
        if not flow.metadata.get("phonehome_marker") and not is_marker(flow.request):
            flow.metadata[LABEL_KEY] = dict(self.labels)
            if flow.response is not None:  # answered on the laptop: not the app's traffic
                kind = self._internal_kind(flow)
                if kind:
                    flow.metadata[LABEL_KEY].update(kind=kind, internal=True)
            return
        flow.metadata["phonehome_marker"] = True
        flow.metadata[LABEL_KEY] = {**self.labels, "kind": "marker", "internal": True}
        flow.response = self.answer_marker(flow)

    @staticmethod
    def _internal_kind(flow: http.HTTPFlow) -> str | None:
        """`onboarding` (mitm.it, the CA download), `refused` (by the guard), or None."""
        if flow.metadata.get("phonehome_refused"):
            return "refused"
        host = ctx.options.onboarding_host if "onboarding_host" in ctx.options else ""
        if host and ctx.options.onboarding and flow.request.pretty_host.lower() == host.lower():
            return "onboarding"
        return None

    def answer_marker(self, flow: http.HTTPFlow) -> http.Response:
        """Change a label if this is the user's own navigation to a valid marker; the page to show."""
        parsed = markers.parse(flow.request.path)
        client = flow.client_conn.peername[0] if flow.client_conn.peername else "?"
        if parsed.error:
            log.warning(f"phonehome: marker request from {client} ignored: {parsed.error}")
            status = 404 if parsed.error == "not a marker path" else 400
            return markers.response(status, "Not a marker", f"Nothing changed: {parsed.error}.", self.labels)
        if parsed.key is None:
            return markers.response(
                200, "phonehome labels", "Open a marker to label what follows.", self.labels
            )
        problem = markers.navigation_problem(flow.request)
        if problem:
            log.warning(
                f"phonehome: marker /{parsed.key}/{parsed.value} from {client} ignored: not the user's own"
                f" navigation ({problem})"
            )
            return markers.response(
                403,
                "Labels not changed",
                f"Open the marker yourself (tap a link below): {problem}.",
                self.labels,
            )
        if parsed.warning:
            log.warning(f"phonehome: {parsed.warning}")
        self.set_labels(f"marker from {client}", **{parsed.key: parsed.value})
        return markers.response(200, "Labels set", f"{parsed.key} is now {parsed.value}.", self.labels)

    def response(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None:  # a WebSocket is saved when it ends, with its messages
            self._save(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        if flow.websocket is None:
            self._save(flow)

    def websocket_end(self, flow: http.HTTPFlow) -> None:
        self._save(flow)

    # raw TCP and UDP (e.g. QUIC not decrypted, other protocols): labelled at their start, saved
    # at their end, messages included, as mitmproxy's own save addon does
    def tcp_start(self, flow: tcp.TCPFlow) -> None:
        flow.metadata[LABEL_KEY] = dict(self.labels)

    def tcp_end(self, flow: tcp.TCPFlow) -> None:
        self._save(flow)

    def tcp_error(self, flow: tcp.TCPFlow) -> None:
        self._save(flow)

    def udp_start(self, flow: udp.UDPFlow) -> None:
        flow.metadata[LABEL_KEY] = dict(self.labels)

    def udp_end(self, flow: udp.UDPFlow) -> None:
        self._save(flow)

    def udp_error(self, flow: udp.UDPFlow) -> None:
        self._save(flow)

    def dns_request(self, flow: dns.DNSFlow) -> None:
        flow.metadata[LABEL_KEY] = dict(self.labels)

    def dns_response(self, flow: dns.DNSFlow) -> None:
        self._save(flow)

    def dns_error(self, flow: dns.DNSFlow) -> None:
        self._save(flow)

    # -- live inspection in the writer process ------------------------------------------------
    def take_inspection(self, flow: http.HTTPFlow) -> bool:
        """The inspector's feed: whether this finished flow will be inspected by the writer process
        along with being written (then the inspector does nothing more for it)."""
        writer = self.writer
        if (
            writer is None
            or not writer.reading
            or writer.failed
            or self.fd is None
            or self.failed
            or self.lost
            or flow.websocket is not None  # saved later, at its end; inspected now
            or flow.metadata.get("phonehome_marker")
        ):
            return False
        self.to_inspect.add(flow.id)
        return True

    def _inspect_elsewhere(self, flow) -> None:
        """A flow taken for inspection that the writer process will not inspect after all."""
        if self.inspector is not None:
            self.inspector.inspect_later(flow)

    def _inspected(self, results: list[Result]) -> None:
        """Summaries from the writer process (None: not inspected there)."""
        for flow_id, summary, mark, error in results:
            flow = self.inspecting.pop(flow_id, None)
            if flow is None or self.inspector is None:
                continue
            if summary is None:
                self._inspect_elsewhere(flow)
            else:
                self.inspector.deliver(flow, summary, mark, error)

    def _inspect_pending_elsewhere(self) -> None:
        """No summaries will come (the writer stopped, or cannot write): the flows still waiting for
        one take the inspector's own route."""
        flows, self.inspecting = list(self.inspecting.values()), weakref.WeakValueDictionary()
        for flow in flows:
            self._inspect_elsewhere(flow)

    def _save(self, flow) -> None:
        """Queue a finished flow to be written right after the proxy has passed it on: serialising
        it then overlaps with the phone reading the response instead of delaying the response."""
        if flow.metadata.get("phonehome_marker"):
            return
        if self.fd is None or self.failed:
            self.dropped += 1  # counted, and said when recording resumes or ends
            if flow.id in self.to_inspect:
                self.to_inspect.discard(flow.id)
                self._inspect_elsewhere(flow)
            return
        if LABEL_KEY not in flow.metadata:  # (labelled at its request, as a rule)
            flow.metadata[LABEL_KEY] = dict(self.labels)
        self.queued.append(flow)
        if len(self.queued) == 1:
            try:
                asyncio.get_running_loop().call_soon(self._write_queued)
            except RuntimeError:  # no event loop (unit use): write now
                self._write_queued()

    def _write_queued(self) -> None:
        flows, self.queued = self.queued, []
        for flow in flows:
            self._write(flow)

    def _write(self, flow) -> None:
        inspect = False
        if self.to_inspect:
            inspect = flow.id in self.to_inspect
            self.to_inspect.discard(flow.id)
        self._write_flow(flow, inspect)
        if inspect and flow.id not in self.inspecting:  # written here, or not at all: inspect elsewhere
            self._inspect_elsewhere(flow)

    def _write_flow(self, flow, inspect: bool) -> None:
        if self.fd is None or self.failed:
            return
        if self.writer is not None:
            try:
                if self.writer.submit_flow(flow, inspect):
                    self.written += 1
                    if inspect:
                        self.inspecting[flow.id] = flow
                    return
            except Exception:  # not picklable: FlowWriter below tells whether it can be recorded
                pass
            if self.failed:  # the writer reported a write error just now
                return
        try:
            data = flow_bytes(flow)
        except Exception as exc:  # e.g. another addon's unserialisable metadata: skip this flow only
            log.error(f"phonehome: flow {flow.id} not recorded: {type(exc).__name__}: {exc}")
            return
        try:
            self._append(data)
            self.written += 1
        except OSError as exc:
            self._fail(f"cannot write {self.dir}/flows.mitm: {exc}")

    def _append(self, data: bytes) -> None:
        assert self.fd is not None
        append_record(self.fd, data)

    def tls_failed_client(self, data: tls.TlsData) -> None:
        """The phone refused our certificate (pinning, or no CA installed): record the contact."""
        client = data.context.client
        server = data.context.server
        address = server.address
        sni = client.sni
        event = {
            "type": "tls_failed",
            "timestamp": time.time(),
            "host": sni or (address[0] if address else ""),
            "sni": sni,
            "client": f"{client.peername[0]}:{client.peername[1]}" if client.peername else "",
            "server_ip": server.peername[0] if server.peername else (address[0] if address else None),
            "error": str(data.conn.error or "client refused the proxy's certificate"),
            "labels": dict(self.labels),
        }
        self.record_event(event)

    def record_event(self, event: dict[str, Any]) -> None:
        """Append one non-flow event to events.jsonl."""
        if self.dir is None or self.failed:
            return
        path = self.dir / "events.jsonl"
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            with os.fdopen(fd, "a") as fo:
                fo.write(json.dumps(event) + "\n")
        except OSError as exc:  # flows are still recorded: say so, once per kind of failure
            message = f"cannot write {path}: {exc}"
            if message != self.event_error:
                self.event_error = message
                log.error(f"phonehome: {message}. Flows are still recorded; this event is lost.")

    def _fail(self, problem: str) -> None:
        """Stop recording loudly (disk full, permissions) but keep proxying the phone's traffic."""
        self.failed = problem
        log.error(f"phonehome: RECORDING STOPPED: {problem}. Traffic is still proxied but not saved.")
        self._inspect_pending_elsewhere()


_inspector = Inspector()
# the guard first: refused flows go no further; the recorder feeds the inspector (see above)
addons = [Guard(), _inspector, Recorder(_inspector), WireGuardQR()]
