"""Endpoint schemas: what a known SDK endpoint's fields mean, read from `analysis/data/schemas.json`.

Key-name rules cannot read positional payloads (Facebook's `extinfo` array, protobuf field numbers)
and guess wrong on an SDK's own constants (Bugsnag's `notifier.url` is its homepage, not a visited
URL). An endpoint's documented format can: each schema names the hosts and path it applies to, the
fields that carry a data type, and the fields a heuristic must not flag. Knowledge stays in the data
file, each entry with its public source; this module only compiles and matches it.

Field patterns: literal decoded paths, where `*` matches within one segment, `[*]` any array index
(or none: a single-element list may be decoded without one), and a leading `**.` any prefix.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources

from phonehome.analysis.classify import shapes


@dataclass(frozen=True, slots=True)
class FieldRule:
    pattern: re.Pattern[str]
    data_type: str
    shape: str


@dataclass(frozen=True, slots=True, eq=False)  # identity hash: cheap as an lru_cache key
class Schema:
    id: str
    hosts: tuple[str, ...]
    path: re.Pattern[str] | None
    fields: tuple[FieldRule, ...]
    not_fields: tuple[tuple[re.Pattern[str], frozenset[str]], ...]
    source: str
    scans: tuple[tuple[re.Pattern[str], re.Pattern[str], str], ...] = ()

    def applies(self, host: str, url_path: str) -> bool:
        return self.covers_host(host) and self.covers_path(url_path)

    def covers_host(self, host: str) -> bool:
        host = host.lower().rstrip(".")
        return any(host == h or host.endswith("." + h) for h in self.hosts)

    def covers_path(self, url_path: str) -> bool:
        return self.path is None or self.path.search(url_path) is not None


class SchemaError(ValueError):
    """schemas.json is malformed; the message names the entry."""


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """A field pattern as a regex over decoded field paths."""
    out = []
    rest = pattern
    if rest.startswith("**."):
        out.append(r"(?:.*\.)?")
        rest = rest[3:]
    i = 0
    while i < len(rest):
        if rest.startswith("[*]", i):
            out.append(r"(?:\[\d+\])?")
            i += 3
        elif rest.startswith("**.", i):
            out.append(r"(?:.*\.)?")
            i += 3
        elif rest[i] == "*":
            out.append(r"[^.\[]*")
            i += 1
        else:
            out.append(re.escape(rest[i]))
            i += 1
    return re.compile("".join(out))


# Values found inside an undecoded (binary) field by a schema's `scan` entry.
SCAN_PATTERNS = {
    "uuid": re.compile(
        r"(?<![0-9a-fA-F-])[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}(?![0-9a-fA-F-])"
    ),
}


def _nonempty(value: str) -> bool:
    value = value.strip()
    return bool(value) and value.lower() not in ("null", "none", "unknown", "0")


SHAPES = {
    "nonempty": _nonempty,
    "package": lambda v: shapes.is_package_loose(v),
    "uuid": lambda v: shapes.is_uuid(v),
    "number": lambda v: v.strip().isdigit(),
}


def parse_schemas(raw: dict) -> tuple[Schema, ...]:
    """Schemas from the JSON document; raises SchemaError naming a bad entry."""
    out = []
    for index, entry in enumerate(raw.get("endpoints") or []):
        name = entry.get("id") or f"endpoints[{index}]"
        try:
            if not entry["source"].strip():
                raise ValueError("empty source")
            fields = []
            for item in entry.get("fields") or []:
                shape = item.get("shape", "nonempty")
                if shape not in SHAPES:
                    raise ValueError(f"unknown shape {shape!r}")
                fields.append(FieldRule(compile_pattern(item["field"]), item["type"], shape))
            nots = tuple(
                (compile_pattern(item["field"]), frozenset(item["types"])) for item in entry.get("not") or []
            )
            scans = tuple(
                (compile_pattern(item["field"]), SCAN_PATTERNS[item["find"]], item["type"])
                for item in entry.get("scan") or []
            )
            path = re.compile(entry["path"]) if entry.get("path") else None
            hosts = tuple(h.lower() for h in entry["hosts"])
        except (KeyError, TypeError, ValueError, re.error) as exc:
            raise SchemaError(f"schemas.json: entry {name}: {exc}") from None
        out.append(Schema(name, hosts, path, tuple(fields), nots, entry["source"], scans))
    return tuple(out)


@lru_cache(maxsize=1)
def shipped_schemas() -> tuple[Schema, ...]:
    text = resources.files("phonehome.analysis").joinpath("data/schemas.json").read_text("utf-8")
    return parse_schemas(json.loads(text))


@lru_cache(maxsize=1024)
def _host_schemas(host: str) -> tuple[Schema, ...]:
    """The shipped schemas for `host`: hosts repeat from request to request, URL paths may not."""
    return tuple(s for s in shipped_schemas() if s.covers_host(host))


@lru_cache(maxsize=4096)
def schemas_for(host: str, url_path: str) -> tuple[Schema, ...]:
    """The shipped schemas that apply to a request to `host` at `url_path`."""
    return tuple(s for s in _host_schemas(host) if s.covers_path(url_path))


@dataclass(frozen=True, slots=True)
class PathRules:
    """What a request's schemas say about the field at one decoded path."""

    rules: tuple[tuple[str, str], ...]  # (data type, shape) of the field rules matching the path
    scans: tuple[tuple[re.Pattern[str], str], ...]  # (finder, data type) of the scans matching it
    refuted: frozenset[str]  # data types the field is not, however it looks

    def field_types(self, value: str) -> list[str]:
        """Data types the schemas give the field with `value`."""
        found: list[str] = []
        for data_type, shape in self.rules:
            if data_type not in found and SHAPES[shape](value):
                found.append(data_type)
        return found

    def scanned(self, value: str) -> list[tuple[str, str]]:
        """(data type, text) found by the scans inside the field's `value` (an undecoded blob)."""
        out = []
        for finder, data_type in self.scans:
            match = finder.search(value)
            if match:
                out.append((data_type, match.group(0)))
        return out


@lru_cache(maxsize=16384)
def rules_at(schemas: tuple[Schema, ...], path: str) -> PathRules | None:
    """The rules of `schemas` for the field at `path`, None when no rule names it. Paths repeat
    from request to request, so each is matched against the schemas' patterns once."""
    rules = tuple(
        (rule.data_type, rule.shape)
        for schema in schemas
        for rule in schema.fields
        if rule.pattern.fullmatch(path)
    )
    scans = tuple(
        (finder, data_type)
        for schema in schemas
        for pattern, finder, data_type in schema.scans
        if pattern.fullmatch(path)
    )
    refuted: set[str] = set()
    for schema in schemas:
        for pattern, types in schema.not_fields:
            if pattern.fullmatch(path):
                refuted |= types
    if not (rules or scans or refuted):
        return None
    return PathRules(rules, scans, frozenset(refuted))
