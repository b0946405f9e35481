"""Claims files (DESIGN.md "Claims"): what a vendor, a privacy policy or a store label says, checkably.

A claims file is TOML (read with the standard library's tomllib, so no new dependency), one
``[[claim]]`` table per statement, in a small vocabulary whose meaning analysis.verdicts.claims
fixes. Every claim carries its source (who said it, where, when) and a paraphrase in the
researcher's own words, so a report can print the claim next to the evidence without quoting
anyone out of context. docs/claims.md documents each type with an example.

Validation is strict and speaks in lines: tomllib's syntax errors carry their line, and for a
schema error (unknown type, missing or misspelt key, wrong value) the line of the offending key
is looked up in the text, so the one-line message is ``claims.toml: line 12: ...``.
"""

from __future__ import annotations

import difflib
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phonehome.analysis.findings import CATEGORIES, DATA_TYPES
from phonehome.analysis.modes import LabelError, normalize_mode
from phonehome.analysis.profile import ProfileError

CLAIMS_NAMES: tuple[str, ...] = ("claims.toml",)  # found inside a capture directory

# type -> (required keys, optional keys) beyond the common ones
CLAIM_TYPES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "no_upload": (("mode",), ("data_types", "destination")),
    "no_contact": (("mode",), ("owner", "category", "destination")),
    "unlinkable": (("modes",), ("destination",)),
    "anonymous": ((), ("destination",)),
    "aggregated": ((), ("destination",)),
    "random_token": (("field",), ("destination",)),
    "encrypted": ((), ("destination", "data_types")),
    "tls_min": (("version",), ("destination",)),
    "not_shared_with": (("owner",), ("owner_sites", "signature_fields", "destination")),
    "opt_out_effective": (("mode",), ("silences", "data_types", "destination")),
    "declared": (("collected",), ("shared",)),
}
COMMON_KEYS: tuple[str, ...] = ("id", "type", "paraphrase", "source", "app")
SOURCE_KEYS: tuple[str, ...] = ("who", "where", "when", "url", "note")
TOP_KEYS: tuple[str, ...] = ("app", "claimant", "claimant_sites", "claim")
TLS_VERSIONS: tuple[str, ...] = ("1.0", "1.1", "1.2", "1.3")
# data type families a claim may name instead of single types (`device_id` = every device_id.*)
FAMILIES: tuple[str, ...] = tuple(sorted({t.split(".")[0] for t in DATA_TYPES if "." in t}))


class ClaimsError(ProfileError):
    """A claims file that cannot be used; str() is one line naming the file and the line.

    A ProfileError: like profile.json it is a study input, and the CLI exits 2 on it."""


@dataclass(frozen=True, slots=True)
class Claim:
    """One checkable statement with its source."""

    id: str
    type: str
    paraphrase: str
    source: dict[str, str]
    params: dict[str, Any] = field(default_factory=dict)
    app: str | None = None
    line: int = 0

    @property
    def source_text(self) -> str:
        """'who, where, when' as one line (url appended)."""
        parts = [self.source.get(k, "") for k in ("who", "where", "when")]
        text = ", ".join(p for p in parts if p)
        return f"{text} <{self.source['url']}>" if self.source.get("url") else text

    def describe(self) -> str:
        """The claim in the vocabulary, e.g. `no_upload mode=incognito data_types=url,search_query`."""
        params = " ".join(
            f"{k}={','.join(map(str, v)) if isinstance(v, list) else v}" for k, v in self.params.items()
        )
        return f"{self.type} {params}".strip()


@dataclass(slots=True)
class ClaimsFile:
    path: str
    claims: list[Claim]
    app: str | None = None
    claimant: str = ""
    claimant_sites: list[str] = field(default_factory=list)


def expand_data_types(names: list[str]) -> set[str]:
    """Data types named by a claim: exact types, or a family (`device_id`) meaning all its types."""
    out: set[str] = set()
    for name in names:
        out |= {name} if name in DATA_TYPES else {t for t in DATA_TYPES if t.startswith(name + ".")}
    return out


def _key_line(text_lines: list[str], start: int, end: int, key: str) -> int | None:
    pattern = re.compile(rf"^\s*[\"']?{re.escape(key)}[\"']?\s*=")
    for number in range(start, end):
        if pattern.match(text_lines[number]):
            return number + 1
    return None


def _claim_blocks(text_lines: list[str]) -> list[tuple[int, int]]:
    """(start, end) line indexes of each [[claim]] table, in order."""
    header = re.compile(r"^\s*\[\[\s*claim\s*\]\]")
    any_table = re.compile(r"^\s*\[")
    starts = [i for i, line in enumerate(text_lines) if header.match(line)]
    blocks = []
    for start in starts:
        end = next(
            (j for j in range(start + 1, len(text_lines)) if any_table.match(text_lines[j])), len(text_lines)
        )
        blocks.append((start, end))
    return blocks


def _nearest(word: str, choices: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else f" (expected one of {', '.join(choices)})"


def _toml_error(path: str, exc: tomllib.TOMLDecodeError) -> ClaimsError:
    message = str(exc)
    found = re.search(r"\(at line (\d+), column (\d+)\)", message)
    if found:
        reason = message[: found.start()].strip()
        return ClaimsError(
            f"{path}: line {found.group(1)}, column {found.group(2)}: not valid TOML ({reason})"
        )
    return ClaimsError(f"{path}: not valid TOML ({message.replace('(at end of document)', 'at the end')})")


def parse_claims(text: str, path: str = "claims.toml") -> ClaimsFile:
    """Validate and build a ClaimsFile from TOML text; ClaimsError (one line: file, line) otherwise."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise _toml_error(path, exc) from None
    lines = text.splitlines()
    blocks = _claim_blocks(lines)

    def fail(message: str, line: int | None) -> ClaimsError:
        return ClaimsError(f"{path}: line {line}: {message}" if line else f"{path}: {message}")

    for key in data:
        if key not in TOP_KEYS:
            raise fail(
                f"unknown top-level key {key!r}{_nearest(key, TOP_KEYS)}",
                _key_line(lines, 0, len(lines), key),
            )
    raw_claims = data.get("claim")
    if not isinstance(raw_claims, list) or not raw_claims:
        raise fail("no claims: add one [[claim]] table per statement", None)
    top_app = data.get("app")
    if top_app is not None and not isinstance(top_app, str):
        raise fail("'app' must be a package name (text)", _key_line(lines, 0, len(lines), "app"))
    sites = data.get("claimant_sites", [])
    if not isinstance(sites, list) or not all(isinstance(s, str) for s in sites):
        raise fail(
            "'claimant_sites' must be a list of domains", _key_line(lines, 0, len(lines), "claimant_sites")
        )
    claims: list[Claim] = []
    ids: set[str] = set()
    for index, raw in enumerate(raw_claims):
        start, end = blocks[index] if index < len(blocks) else (0, len(lines))
        header = start + 1 if index < len(blocks) else None

        def line_of(key: str, start: int = start, end: int = end, header: int | None = header) -> int | None:
            return _key_line(lines, start, end, key) or header

        claims.append(_claim(raw, index, line_of, fail, header))
        if claims[-1].id in ids:
            raise fail(f"claim id {claims[-1].id!r} is used twice", line_of("id"))
        ids.add(claims[-1].id)
    return ClaimsFile(
        path,
        claims,
        app=top_app or None,
        claimant=str(data.get("claimant") or ""),
        claimant_sites=[s.lower().strip(".") for s in sites],
    )


def _claim(raw: object, index: int, line_of, fail, header: int | None) -> Claim:
    if not isinstance(raw, dict):
        raise fail(f"claim {index + 1} must be a table", header)
    kind = raw.get("type")
    name = f"claim {raw.get('id') or index + 1}"
    if kind not in CLAIM_TYPES:
        if kind is None:
            raise fail(f"{name} has no 'type'{_nearest('', tuple(CLAIM_TYPES))}", header)
        raise fail(f"{name}: unknown type {kind!r}{_nearest(str(kind), tuple(CLAIM_TYPES))}", line_of("type"))
    required, optional = CLAIM_TYPES[kind]
    allowed = (*COMMON_KEYS, *required, *optional)
    for key in raw:
        if key not in allowed:
            raise fail(f"{name} ({kind}): unknown key {key!r}{_nearest(key, allowed)}", line_of(key))
    for key in ("paraphrase", "source", *required):
        if key not in raw:
            raise fail(f"{name} ({kind}) lacks {key!r}", header)
    paraphrase = raw["paraphrase"]
    if not isinstance(paraphrase, str) or not paraphrase.strip():
        raise fail(f"{name}: 'paraphrase' must be non-empty text", line_of("paraphrase"))
    source = raw["source"]
    if not isinstance(source, dict):
        raise fail(f"{name}: 'source' must be a table {{who, where, when}}", line_of("source"))
    for key in source:
        if key not in SOURCE_KEYS:
            raise fail(f"{name}: unknown source key {key!r}{_nearest(key, SOURCE_KEYS)}", line_of("source"))
    for key in ("who", "where", "when"):
        if not str(source.get(key) or "").strip():
            raise fail(f"{name}: source lacks {key!r} (who said it, where, when)", line_of("source"))
    params: dict[str, Any] = {}
    for key in (*required, *optional):
        if key in raw:
            try:
                params[key] = _value(kind, key, raw[key])
            except (ValueError, TypeError, LabelError) as exc:
                raise fail(f"{name} ({kind}): {key}: {exc}", line_of(key)) from None
    if kind == "no_contact" and not {"owner", "category", "destination"} & set(params):
        raise fail(f"{name} (no_contact) needs 'owner', 'category' or 'destination'", header)
    app = raw.get("app")
    if app is not None and not isinstance(app, str):
        raise fail(f"{name}: 'app' must be text", line_of("app"))
    claim_id = raw.get("id") or f"claim-{index + 1}"
    if not isinstance(claim_id, str):
        raise fail(f"{name}: 'id' must be text", line_of("id"))
    return Claim(
        claim_id,
        kind,
        " ".join(paraphrase.split()),
        {k: str(v) for k, v in source.items()},
        params,
        app,
        header or 0,
    )


def _text_list(value: object) -> list[str]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
        raise ValueError("expected text or a non-empty list of text")
    return [v.strip() for v in value]


def _value(kind: str, key: str, value: object) -> Any:
    """A parameter checked and normalised (modes canonical, data types from the vocabulary)."""
    if key in ("mode", "silences"):
        if not isinstance(value, str):
            raise ValueError("expected a mode name")
        return normalize_mode(value)
    if key == "modes":
        modes = [normalize_mode(m) for m in _text_list(value)]
        if len(modes) != 2 or modes[0] == modes[1]:
            raise ValueError('expected two different modes, e.g. ["normal", "incognito"]')
        return modes
    if key in ("data_types", "collected", "shared"):
        names = _text_list(value) if value != [] or key == "data_types" else []
        for name in names:
            if name not in DATA_TYPES and name not in FAMILIES:
                raise ValueError(f"unknown data type {name!r}{_nearest(name, DATA_TYPES + FAMILIES)}")
        return names
    if key == "category":
        if value not in CATEGORIES:
            raise ValueError(f"unknown category {value!r}{_nearest(str(value), CATEGORIES)}")
        return value
    if key == "version":
        text = str(value).removeprefix("TLSv").removeprefix("TLS").strip()
        if text not in TLS_VERSIONS:
            raise ValueError(f"unknown TLS version {value!r} (expected one of {', '.join(TLS_VERSIONS)})")
        return text
    if key in ("owner_sites", "signature_fields"):
        return _text_list(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError("expected non-empty text")
    return value.strip()


def load_claims(path: str | Path) -> ClaimsFile:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ClaimsError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise ClaimsError(f"{path}: not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:
        raise ClaimsError(f"{path}: unreadable ({exc.strerror or exc})") from None
    return parse_claims(text, str(path))


OTHER_FORMATS: tuple[str, ...] = ("claims.yaml", "claims.yml", "claims.json")


def find_claims(paths: list[str | Path]) -> list[Path]:
    """claims.toml files inside the given capture directories (or beside a dump), each once.

    A claims file in another format is refused rather than silently skipped: a reader would
    otherwise take the missing section for "no claims"."""
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        folder = path if path.is_dir() else path.parent
        for name in OTHER_FORMATS:
            if (folder / name).is_file():
                raise ClaimsError(
                    f"{folder / name}: claims files are TOML; save it as claims.toml (docs/claims.md)"
                )
        for name in CLAIMS_NAMES:
            candidate = folder / name
            if candidate.is_file() and candidate.resolve() not in {f.resolve() for f in found}:
                found.append(candidate)
    return found
