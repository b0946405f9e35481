"""Record a phone's traffic as a labelled phonehome capture (DESIGN.md "Recording").

Load with `mitmdump -s addons/recorder.py` (or mitmweb). Every finished flow is appended to
`<phonehome_dir>/<session>/flows.mitm` with one os.write of the bytes mitmproxy's own FlowWriter
produces for it (so the dump is exactly mitmproxy's format); restarting with the same session
appends. The response hook only queues the flow: it is handed on at the event loop's next turn,
after the response has gone back to the phone, to a writer process (addons/dumpwriter.py) as one
pickled datagram; option `phonehome_record_worker=false` writes in the proxy instead. So a killed
proxy loses the flows in flight and, if killed in the microseconds between a response and that
turn, the flow just answered (README, "Decisions"). Requests to host
`phonehome.mark` are answered by the proxy and change the labels of the flows that follow; they are
never forwarded and never written to flows.mitm (they are not the phone's traffic). session.json is
rewritten only when the labels change. TLS handshakes the client refuses are written to
events.jsonl. Recording errors (e.g. a full disk) stop recording loudly but never stop proxying; a
flow cut short by one is cut off again, so the dump stays readable. The live inspector
(addons/inspector.py) is registered here too; its annotations arrive after the flow was written.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import json
import logging
import os
import sys
import time
from datetime import UTC, datetime
from importlib import metadata as importlib_metadata
from pathlib import Path
from typing import Any

from mitmproxy import command, ctx, dns, http, tls, version

from phonehome.addons.dumpwriter import DumpWriter, append_record, flow_bytes, pickle_flow
from phonehome.addons.guard import Guard
from phonehome.addons.inspector import Inspector
from phonehome.analysis.labels import LABEL_KEY

log = logging.getLogger(__name__)

MARKER_HOST = "phonehome.mark"
_MARKER_BYTES = MARKER_HOST.encode()
LABEL_NAMES = ("mode", "app", "phase")
SCHEMA = 1


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
    """`/mode/incognito` -> ("mode", "incognito"); None when the path sets nothing."""
    parts = [p for p in path.split("?", 1)[0].split("/") if p]
    if len(parts) >= 2 and parts[0] in LABEL_NAMES:
        return parts[0], "/".join(parts[1:])
    return None


def _tool_versions() -> dict[str, str]:
    try:
        own = importlib_metadata.version("phonehome")
    except importlib_metadata.PackageNotFoundError:
        own = "unknown"
    return {"phonehome": own, "mitmproxy": version.VERSION}


class Recorder:
    """Writes labelled flows, marker phases, session.json and events.jsonl."""

    def __init__(self) -> None:
        self.labels: dict[str, Any] = {"session": "", "app": None, "mode": "normal", "phase": None}
        self.dir: Path | None = None
        self.fd: int | None = None  # flows.mitm, opened O_APPEND
        self.session_doc: dict[str, Any] = {}
        self.failed: str | None = None
        self.written = 0
        self.writer: DumpWriter | None = None
        self.queued: list = []  # finished flows waiting for the next event-loop turn
        self.is_running = False  # the proxy is up: a writer process may be started

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
        if "phonehome_app" in updated:
            changes["app"] = ctx.options.phonehome_app or None
        if "phonehome_mode" in updated:
            changes["mode"] = ctx.options.phonehome_mode or "normal"
        if "phonehome_dir" in updated or "phonehome_session" in updated or self.dir is None:
            self.labels.update(changes)  # the first phase starts with the options' labels
            self._open(ctx.options.phonehome_dir, ctx.options.phonehome_session or default_session())
        elif changes:
            self.set_labels(**changes)

    def running(self) -> None:
        self.is_running = True
        self._start_writer()

    def done(self) -> None:
        self._write_queued()
        self._stop_writer()
        self._close_phase()
        if self.session_doc:  # cumulative over restarts: `phonehome record` reports it at the end
            self.session_doc["flows_written"] = self.session_doc.get("flows_written", 0) + self.written
            self.written = 0
        self._write_session()
        if self.fd is not None:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = None

    def _open(self, base: str, session: str) -> None:
        if self.fd is not None:
            self.done()
        session = safe_name(session)
        self.dir = Path(base).expanduser() / session
        self.failed = None
        try:
            self.dir.mkdir(parents=True, exist_ok=True, mode=0o700)
            os.chmod(self.dir, 0o700)
            path = self.dir / "flows.mitm"
            self.fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
            os.chmod(path, 0o600)
        except OSError as exc:
            self._fail(f"cannot open capture directory {self.dir}: {exc}")
            return
        self.labels["session"] = session
        self.session_doc = self._read_session(session)
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
            self.writer = DumpWriter(self.dir / "flows.mitm", self.fd, self._fail)
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
    def set_labels(self, **changes: Any) -> None:
        """Change labels for the flows that follow; each change starts a phase in session.json."""
        if all(self.labels.get(k) == v for k, v in changes.items()):
            return
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
            phases[-1]["end"] = time.time()

    def _write_session(self) -> None:
        if self.dir is None or not self.session_doc or self.failed:
            return
        target = self.dir / "session.json"
        tmp = self.dir / "session.json.tmp"
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            with os.fdopen(fd, "w") as fo:
                json.dump(self.session_doc, fo, indent=2)
            os.replace(tmp, target)
        except OSError as exc:
            self._fail(f"cannot write {target}: {exc}")

    @command.command("phonehome.mode")
    def cmd_mode(self, mode: str) -> None:
        """Set the mode label (e.g. normal, incognito) for the flows that follow."""
        self.set_labels(mode=mode)

    @command.command("phonehome.app")
    def cmd_app(self, app: str) -> None:
        """Set the app label (package name) for the flows that follow."""
        self.set_labels(app=app or None)

    @command.command("phonehome.phase")
    def cmd_phase(self, phase: str) -> None:
        """Set the phase label for the flows that follow."""
        self.set_labels(phase=phase or None)

    # -- flows -------------------------------------------------------------------------------
    def requestheaders(self, flow: http.HTTPFlow) -> None:
        if is_marker(flow.request):
            flow.metadata["phonehome_marker"] = True

    def request(self, flow: http.HTTPFlow) -> None:
        """Label every request; answer markers ourselves so they never leave the laptop."""
        if not flow.metadata.get("phonehome_marker") and not is_marker(flow.request):
            flow.metadata[LABEL_KEY] = dict(self.labels)
            return
        flow.metadata["phonehome_marker"] = True
        change = parse_marker(flow.request.path)
        if change is not None:
            key, value = change
            self.set_labels(**{key: value or None})
        body = (
            "<!doctype html><title>phonehome</title><h1>phonehome labels</h1><ul>"
            + "".join(f"<li>{html.escape(k)}: {html.escape(str(v))}</li>" for k, v in self.labels.items())
            + "</ul>"
        )
        flow.response = http.Response.make(
            200, body.encode(), {"Content-Type": "text/html; charset=utf-8", "Cache-Control": "no-store"}
        )

    def response(self, flow: http.HTTPFlow) -> None:
        self._save(flow)

    def error(self, flow: http.HTTPFlow) -> None:
        self._save(flow)

    def dns_request(self, flow: dns.DNSFlow) -> None:
        flow.metadata[LABEL_KEY] = dict(self.labels)

    def dns_response(self, flow: dns.DNSFlow) -> None:
        self._save(flow)

    def dns_error(self, flow: dns.DNSFlow) -> None:
        self._save(flow)

    def _save(self, flow) -> None:
        """Queue a finished flow to be written right after the proxy has passed it on: serialising
        it then overlaps with the phone reading the response instead of delaying the response."""
        if flow.metadata.get("phonehome_marker") or self.fd is None or self.failed:
            return
        flow.metadata.setdefault(LABEL_KEY, dict(self.labels))
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
        if self.fd is None or self.failed:
            return
        if self.writer is not None:
            try:
                if self.writer.submit(flow.id, pickle_flow(flow)):
                    self.written += 1
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
        except OSError as exc:
            self._fail(f"cannot write {path}: {exc}")

    def _fail(self, problem: str) -> None:
        """Stop recording loudly (disk full, permissions) but keep proxying the phone's traffic."""
        self.failed = problem
        log.error(f"phonehome: RECORDING STOPPED: {problem}. Traffic is still proxied but not saved.")


addons = [Guard(), Inspector(), Recorder()]  # the guard first: refused flows go no further
