"""A capture directory (DESIGN.md "Capture session"): flows.mitm, session.json, events.jsonl.

A dump alone is a valid capture; session.json only supplies the session name when flows carry
none. events.jsonl holds what is not a flow (TLS handshakes the phone refused: pinning).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path

from phonehome.analysis.labels import labels_from
from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import CaptureError
from phonehome.analysis.sources.fastdump import read_dump

DUMP_NAME = "flows.mitm"
SESSION_NAME = "session.json"
EVENTS_NAME = "events.jsonl"
PROFILE_NAME = "profile.json"


def read_session(path: Path, report: SourceReport) -> tuple[str, tuple[str, ...]]:
    """The session's name (session.json's, else the directory's) and the modes it declares.

    Declared modes (`"modes": [...]`, e.g. `incognito-optout`) are the study's own: labels in
    them are expected, not warned about (analysis.labels).
    """
    meta_path = path / SESSION_NAME
    name, modes = path.name, ()
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            report.warnings.append(f"{meta_path}: unreadable session.json ({exc}); using the folder name")
            return name, modes
        if isinstance(meta, dict):
            if meta.get("session"):
                name = str(meta["session"])
            declared = meta.get("modes")
            if isinstance(declared, list):
                modes = tuple(m for m in declared if isinstance(m, str) and m.strip())
    return name, modes


def read_events(path: Path, defaults: Labels, report: SourceReport) -> Iterator[ContactRecord]:
    """ContactRecords from events.jsonl; a bad line is reported and skipped, the rest kept."""
    source = str(path)
    with path.open("rb") as fo:
        for lineno, raw in enumerate(fo, start=1):
            if not raw.strip():
                continue
            try:
                event = json.loads(raw)
                if not isinstance(event, dict):
                    raise ValueError("not a JSON object")
                labels = labels_from(event.get("labels"), defaults, report)
                kind = str(event.get("type") or "event")
                host = str(event.get("host") or event.get("sni") or "")
                detail = str(event.get("error") or event.get("detail") or "")
                server_ip = event.get("server_ip")
                yield ContactRecord(
                    source,
                    labels,
                    float(event.get("timestamp") or 0.0),
                    host,
                    kind,
                    detail,
                    server_ip if isinstance(server_ip, str) else None,
                )
                report.records += 1
            except (ValueError, TypeError) as exc:
                report.damaged(f"{path}: line {lineno} skipped ({exc})")


@dataclass(frozen=True, slots=True)
class CaptureParts:
    """What a capture directory holds to read: its labels' defaults and its two record files."""

    defaults: Labels  # the session named by session.json or the folder, when not given
    dump: Path | None  # flows.mitm, if present
    events: Path | None  # events.jsonl, if present


def capture_parts(path: Path, defaults: Labels, report: SourceReport) -> CaptureParts:
    """The parts of the capture directory `path`; CaptureError if it holds neither file.

    Every reader of a capture directory starts here (the sequential reader below and the
    analysis' reader seam, which reads the dump in worker processes when it is big).
    """
    dump = path / DUMP_NAME
    events = path / EVENTS_NAME
    if not dump.exists() and not events.exists():
        raise CaptureError(path, f"not a capture directory (no {DUMP_NAME} or {EVENTS_NAME} inside)")
    session, report.modes = read_session(path, report)
    defaults = replace(defaults, session=defaults.session or session)
    return CaptureParts(defaults, dump if dump.exists() else None, events if events.exists() else None)


def read_capture_dir(
    path: Path, defaults: Labels, report: SourceReport
) -> Iterator[HttpRecord | ContactRecord]:
    """The records of flows.mitm, then those of events.jsonl."""
    parts = capture_parts(path, defaults, report)
    if parts.dump is not None:
        yield from read_dump(parts.dump, parts.defaults, report, allow_empty=True)
    if parts.events is not None:
        yield from read_events(parts.events, parts.defaults, report)
