"""A capture directory (DESIGN.md "Capture session"): flows.mitm, session.json, events.jsonl.

A dump alone is a valid capture; session.json only supplies the session name when flows carry
none. events.jsonl holds what is not a flow (TLS handshakes the phone refused: pinning).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

from phonehome.analysis.records import ContactRecord, HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import CaptureError
from phonehome.analysis.sources.mitm import read_dump

DUMP_NAME = "flows.mitm"
SESSION_NAME = "session.json"
EVENTS_NAME = "events.jsonl"
PROFILE_NAME = "profile.json"


def session_name(path: Path, report: SourceReport) -> str:
    """The session's name from session.json, else the directory's name."""
    meta_path = path / SESSION_NAME
    if meta_path.exists():
        try:
            meta = json.loads(meta_path.read_text(encoding="utf-8"))
            if isinstance(meta, dict) and meta.get("session"):
                return str(meta["session"])
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            report.warnings.append(f"{meta_path}: unreadable session.json ({exc}); using the folder name")
    return path.name


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
                labels = _labels(event.get("labels"), defaults)
                kind = str(event.get("type") or "event")
                host = str(event.get("host") or event.get("sni") or "")
                detail = str(event.get("error") or event.get("detail") or "")
                yield ContactRecord(
                    source,
                    labels,
                    float(event.get("timestamp") or 0.0),
                    host,
                    kind,
                    detail,
                    event.get("server_ip"),
                )
                report.records += 1
            except (ValueError, TypeError) as exc:
                report.damaged(f"{path}: line {lineno} skipped ({exc})")


def _labels(raw: object, defaults: Labels) -> Labels:
    if not isinstance(raw, dict):
        return defaults
    return Labels(
        session=str(raw.get("session") or defaults.session),
        app=raw.get("app") or defaults.app,
        mode=str(raw.get("mode") or defaults.mode),
        phase=raw.get("phase") or defaults.phase,
    )


def read_capture_dir(
    path: Path, defaults: Labels, report: SourceReport
) -> Iterator[HttpRecord | ContactRecord]:
    dump = path / DUMP_NAME
    events = path / EVENTS_NAME
    if not dump.exists() and not events.exists():
        raise CaptureError(path, f"not a capture directory (no {DUMP_NAME} or {EVENTS_NAME} inside)")
    defaults = replace(defaults, session=defaults.session or session_name(path, report))
    if dump.exists():
        yield from read_dump(dump, defaults, report, allow_empty=True)
    if events.exists():
        yield from read_events(events, defaults, report)
