"""Labels read from a capture: `flow.metadata["phonehome"]` and events.jsonl's `labels`, one way.

A capture's labels were written by the recorder, but a dump may come from anyone, and any
version: a label may be missing, empty, of another type (a number, a list), overlong, or a mode
spelt another way (`Incognito`, `private`). Every reader (the mitmproxy-object path, the fast
dump reader, the events file) turns what it finds into Labels here, so that they all agree:
modes normalised with phonehome.analysis.modes.read_mode (an unknown one kept and warned
about), app and phase bounded with clean_label, anything unusable replaced by the default and
warned about, never raised.

The key is defined here, in the library; the addons import it (the library never imports them).
"""

from __future__ import annotations

import functools

from phonehome.analysis.modes import LabelError, clean_label, normalize_mode, read_mode
from phonehome.analysis.records import Labels, SourceReport

#: The flow.metadata key under which the recorder stores a flow's labels (DESIGN.md).
LABEL_KEY = "phonehome"


def labels_from(raw: object, defaults: Labels, report: SourceReport | None = None) -> Labels:
    """Labels from a `{"session", "app", "mode", "phase"}` mapping, `defaults` field by field.

    A missing, None or empty value takes the default silently; an unusable one takes it with a
    warning in `report` (said once per input), as does a mode that is neither canonical nor
    declared by the capture (`report.modes`, from session.json): such a mode is kept.
    """
    if not isinstance(raw, dict):
        return defaults
    values = (raw.get("session"), raw.get("app"), raw.get("mode"), raw.get("phase"))
    declared = report.modes if report is not None else ()
    try:
        labels, problems = _read(values, defaults, declared)
    except TypeError:  # an unhashable value (a list, a dict): no cache, same reading
        labels, problems = _read.__wrapped__(values, defaults, declared)
    if problems and report is not None:
        for problem in problems:
            report.warn_once(problem)  # Analysis.warnings names the input
    return labels


def labels_from_metadata(metadata: object, defaults: Labels, report: SourceReport | None = None) -> Labels:
    """Labels from a flow's whole metadata dict (the recorder's entry under LABEL_KEY)."""
    raw = metadata.get(LABEL_KEY) if isinstance(metadata, dict) else None
    return labels_from(raw, defaults, report)


#: Hosts the proxy answers itself (the CA download page, the label markers): never the app's
#: traffic. Known by name too, for captures recorded before flows carried "internal".
INTERNAL_HOSTS = {"mitm.it": "onboarding", "phonehome.mark": "marker"}


def internal_kind(metadata: object, host: str) -> str | None:
    """Why a flow is not the app's traffic, or None if it is: the recorder's mark
    (`"internal": true` and a `"kind"`, e.g. "onboarding", "refused") or an internal host."""
    raw = metadata.get(LABEL_KEY) if isinstance(metadata, dict) else None
    if isinstance(raw, dict) and raw.get("internal") is True:
        kind = raw.get("kind")
        return kind if isinstance(kind, str) and kind.isidentifier() and len(kind) <= 32 else "internal"
    return INTERNAL_HOSTS.get(host.lower().rstrip(".")) if host else None


_INTERNAL_NOTE = "flow(s) the proxy answered itself left out (not the app's traffic): "


def internal_counts(notes: list[str]) -> dict[str, int]:
    """Left-out internal flows by kind, as note_internal counted them in `notes`."""
    counts: dict[str, int] = {}
    for note in notes:
        if _INTERNAL_NOTE in note:
            for part in note.split(_INTERNAL_NOTE, 1)[1].split(", "):
                number, _, name = part.partition(" ")
                counts[name] = counts.get(name, 0) + int(number)
    return counts


def note_internal(report: SourceReport, kind: str, count: int = 1) -> None:
    """Count left-out internal flows in `report.notes`: one line per input, kept up to date,
    e.g. "... left out (not the app's traffic): 1 onboarding, 3 refused"."""
    counts = internal_counts(report.notes)
    counts[kind] = counts.get(kind, 0) + count
    kinds = ", ".join(f"{n} {k}" for k, n in sorted(counts.items()))
    line = f"{report.path}: {sum(counts.values())} {_INTERNAL_NOTE}{kinds}"
    for i, note in enumerate(report.notes):
        if _INTERNAL_NOTE in note:
            report.notes[i] = line
            return
    report.notes.append(line)


@functools.lru_cache(maxsize=1024)  # one dump repeats a handful of label sets over every flow
def _read(
    values: tuple[object, ...], defaults: Labels, declared: tuple[str, ...]
) -> tuple[Labels, tuple[str, ...]]:
    session, app, mode, phase = values
    problems: list[str] = []
    labels = Labels(
        session=_session(session, defaults.session, problems),
        app=_bounded(app, "app", defaults.app, problems),
        mode=_mode(mode, defaults.mode, declared, problems),
        phase=_bounded(phase, "phase", defaults.phase, problems),
    )
    return labels, tuple(problems)


def _absent(value: object) -> bool:
    return value is None or value == ""


def _session(value: object, default: str, problems: list[str]) -> str:
    if _absent(value):
        return default
    if isinstance(value, str):
        return value
    problems.append(f"label session must be text, got {type(value).__name__}; used {default!r}")
    return default


def _bounded(value: object, what: str, default: str | None, problems: list[str]) -> str | None:
    if _absent(value):
        return default
    try:
        return clean_label(value, what=what)
    except LabelError as exc:
        problems.append(f"label {exc}; used {default!r}")
        return default


def _mode(value: object, default: str, declared: tuple[str, ...], problems: list[str]) -> str:
    if _absent(value):
        return default
    try:
        reading = read_mode(value, _valid(declared), where="the capture's labels")
    except LabelError as exc:
        problems.append(f"label {exc}; used {default!r}")
        return default
    if reading.warning:
        problems.append(reading.warning)
    return reading.mode


@functools.lru_cache(maxsize=64)
def _valid(declared: tuple[str, ...]) -> tuple[str, ...]:
    """The declared modes that are modes at all (a bad one in session.json is not our concern here)."""
    valid = []
    for mode in declared:
        try:
            valid.append(normalize_mode(mode))
        except LabelError:
            continue
    return tuple(valid)
