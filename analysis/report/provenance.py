"""Where a report came from: tool versions, when, every input file with its SHA-256 and size, options.

A published finding has to be reproducible: a reader holding the same capture can check its hash,
run the same phonehome and mitmproxy versions with the same options and get the same report. The
record is plain data, gathered at the edge (the CLI) and rendered by the HTML and Markdown reports.
"""

from __future__ import annotations

import hashlib
import os
import platform
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

#: Files of a capture directory worth naming, and the role each plays.
_ROLES = {
    "flows.mitm": "capture",
    "session.json": "session",
    "events.jsonl": "events",
    "profile.json": "profile",
    "plan.json": "plan",
}
_MAX_FILES_PER_DIR = 100  # a capture directory is a handful of files; never walk a home folder


@dataclass(frozen=True)
class InputFile:
    """One file the report was built from."""

    path: str
    role: str
    size: int
    sha256: str


@dataclass
class Provenance:
    """Everything the footer says about how a report was made."""

    phonehome: str
    mitmproxy: str
    python: str
    created: float
    inputs: list[InputFile] = field(default_factory=list)
    options: dict[str, str] = field(default_factory=dict)


def _version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "unknown"


def file_sha256(path: Path) -> str:
    """The file's SHA-256, read in chunks (captures can be gigabytes)."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def _role(path: Path, default: str) -> str:
    if path.name in _ROLES:
        return _ROLES[path.name]
    if path.name.startswith("claims."):
        return "claims"
    return default


def _files_of(path: Path, role: str) -> list[tuple[Path, str]]:
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith("."))
        return [(p, _role(p, "capture file")) for p in files[:_MAX_FILES_PER_DIR]]
    return [(path, _role(path, role))] if path.is_file() else []


def input_files(
    captures: Iterable[str | os.PathLike[str]],
    *,
    profile: str | os.PathLike[str] | None = None,
    claims: str | os.PathLike[str] | None = None,
    extra: Mapping[str, str | os.PathLike[str] | None] | None = None,
) -> list[InputFile]:
    """Every input with its hash: capture files (a directory's files each), profile, claims, extras."""
    wanted: list[tuple[Path, str]] = []
    for capture in captures:
        wanted += _files_of(Path(capture), "capture")
    for role, path in (("profile", profile), ("claims", claims), *((extra or {}).items())):
        if path:
            wanted += _files_of(Path(path), role)
    seen: set[Path] = set()
    out = []
    for path, role in wanted:
        resolved = path.resolve()
        if resolved in seen:
            continue
        seen.add(resolved)
        try:
            out.append(InputFile(str(path), role, path.stat().st_size, file_sha256(path)))
        except OSError as exc:
            out.append(InputFile(str(path), role, -1, f"unreadable: {exc.strerror or exc}"))
    return out


def collect(
    captures: Iterable[str | os.PathLike[str]],
    *,
    profile: str | os.PathLike[str] | None = None,
    claims: str | os.PathLike[str] | None = None,
    extra: Mapping[str, str | os.PathLike[str] | None] | None = None,
    options: Mapping[str, object] | None = None,
    created: float | None = None,
) -> Provenance:
    """The provenance of a report built now from these inputs with these options."""
    try:
        from mitmproxy.version import VERSION as mitmproxy_version
    except ImportError:  # pragma: no cover - mitmproxy is a dependency
        mitmproxy_version = _version("mitmproxy")
    return Provenance(
        phonehome=_version("phonehome"),
        mitmproxy=mitmproxy_version,
        python=platform.python_version(),
        created=time.time() if created is None else created,
        inputs=input_files(captures, profile=profile, claims=claims, extra=extra),
        options={str(k): _option_text(v) for k, v in (options or {}).items() if v not in (None, [], "")},
    )


def _option_text(value: object) -> str:
    if isinstance(value, (list, tuple)):
        return ", ".join(str(v) for v in value)
    return str(value)


def from_tables(*frames, options: Mapping[str, object] | None = None) -> Provenance:
    """Provenance when the caller did not gather one: the inputs named in the tables' `source` column."""
    sources: list[str] = []
    for frame in frames:
        if frame is not None and not frame.empty and "source" in frame.columns:
            sources += [str(s) for s in frame["source"].unique() if s]
    return collect(sorted(dict.fromkeys(sources)), options=options)


def for_run(options, *, redact: bool = False, claims: str | None = None) -> Provenance:
    """The provenance of a `phonehome report`/`demo` run from its input options (InputOptions:
    captures, profile, keylog, endpoints, app, mode) and report options."""
    extra: dict[str, str | os.PathLike[str] | None] = {"keylog": getattr(options, "keylog", None)}
    for n, path in enumerate(getattr(options, "endpoints", ()) or ()):
        extra[f"endpoints {n + 1}"] = path
    return collect(
        getattr(options, "captures", ()),
        profile=getattr(options, "profile", None),
        claims=claims,
        extra=extra,
        options={
            "--app": getattr(options, "app", None),
            "--mode": getattr(options, "mode", None),
            "--redact": "yes" if redact else "no",
        },
    )


def shown_path(path: str, redacted: bool) -> str:
    """A path as the footer shows it: whole, or in a redacted report only its last two parts (a home
    directory's name is often a person's)."""
    if not redacted:
        return path
    parts = Path(path).parts
    return str(Path(*parts[-2:])) if len(parts) >= 2 else path
