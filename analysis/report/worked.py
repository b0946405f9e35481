"""Worked examples: one request per evidence group, decoded step by step for a reader to follow.

A finding says `body.data_list[1].properties.$url` was reached through `form>base64>gzip>json`. A
journalist's editor wants to see it: the bytes the phone sent, each layer undone in turn, and the
value highlighted in the decoded JSON. This module re-reads the example's request from its capture
file, re-decodes it with phonehome.analysis.decode (the finding's field must come out again, else
no example is shown), and replays the chain layer by layer with the decoder's own codecs, keeping
every view bounded (previews, not whole bodies: the full data stays in the capture).

In a redacted report nothing of the request is shown that redaction could not vouch for: encoded
layers by their size only, decoded structures by their keys, and the value as the finding has it.
"""

from __future__ import annotations

import json
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, unquote

import pandas as pd
from markupsafe import Markup, escape

from phonehome.analysis.decode import codecs, decode_request
from phonehome.analysis.records import HttpRecord, Labels, SourceReport

PREVIEW_CHARS = 600  # raw and intermediate layers
STRUCTURE_CHARS = 5_000  # the decoded JSON around the field
LEAF_CHARS = 160  # other values in a decoded structure
MAX_KEYS = 24  # keys shown per object off the field's path
MAX_DECOMPRESSED = 4 * 1024 * 1024
MAX_SCAN_BYTES = 2 * 1024**3  # dumps larger than this are not searched for examples
COMPRESSIONS = frozenset({"gzip", "zlib", "deflate", "brotli", "zstd"})
_MARK_OPEN, _MARK_CLOSE = "\ue000", "\ue001"  # private-use sentinels, stripped from captured text
_TOKEN = re.compile(r'\.((?:[^.\[\]"\s])+)|\[(\d+)\]|\[("(?:[^"\\]|\\.)*")\]')


@dataclass
class Step:
    """One layer: what was done, and the value after it (HTML with the field marked, and text)."""

    title: str
    body: Markup | None = None
    body_text: str | None = None


@dataclass
class Example:
    request: str
    steps: list[Step] = field(default_factory=list)
    note: str = ""


# -- finding the requests ---------------------------------------------------------------------------


def _dump_records(path: Path, flow_ids: set[str]) -> list[HttpRecord]:
    """The records of `flow_ids` in a mitmproxy dump, found by walking the record boundaries and
    looking at the ids inside each (no parsing), then read back through phonehome's own reader
    from a temporary dump holding just those records."""
    from phonehome.analysis.sources import read_source

    if path.stat().st_size > MAX_SCAN_BYTES:
        return []
    data = path.read_bytes()
    wanted = {i.encode("utf-8", "surrogatepass") for i in flow_ids}
    chunks, position, remaining = [], 0, set(wanted)
    while position < len(data) and remaining:
        colon = data.find(b":", position, position + 12)
        if colon < 0 or not data[position:colon].isdigit():
            break  # damage: the analysis already warned; no example rather than a guess
        end = colon + 1 + int(data[position:colon]) + 1
        hit = data.find(b"2:id", colon, end)
        while hit >= 0:  # the flow's id and its connections' ids: `2:id;<len>:<id>;` (or `,`: bytes)
            start = data.find(b":", hit + 5, hit + 12)
            if data[hit + 4 : hit + 5] in (b";", b",") and start > 0 and data[hit + 5 : start].isdigit():
                found = data[start + 1 : start + 1 + int(data[hit + 5 : start])]
                if found in remaining:
                    chunks.append(data[position:end])
                    remaining.discard(found)
                    break
            hit = data.find(b"2:id", hit + 4, end)
        position = end
    if not chunks:
        return []
    with tempfile.TemporaryDirectory() as tmp:
        part = Path(tmp) / "examples.mitm"
        part.write_bytes(b"".join(chunks))
        records = read_source(part, Labels(), SourceReport(str(part)), kind="dump")
        return [r for r in records if isinstance(r, HttpRecord) and r.flow_id in flow_ids]


def find_records(sources: dict[str, set[str]]) -> dict[str, HttpRecord]:
    """flow id -> its request, for the wanted flow ids of each source file."""
    from phonehome.analysis.sources import read_source, sniff_kind

    found: dict[str, HttpRecord] = {}
    for source, ids in sources.items():
        path = Path(source)
        try:
            kind = sniff_kind(path)
            if kind == "dump":
                records = _dump_records(path, ids)
            else:
                records = (
                    r
                    for r in read_source(path, Labels(), SourceReport(source), kind=kind)
                    if isinstance(r, HttpRecord) and r.flow_id in ids
                )
            for record in records:
                found.setdefault(record.flow_id, record)
        except Exception:  # a capture that moved or changed since the analysis: no example, no crash
            continue
    return found


# -- the steps --------------------------------------------------------------------------------------


def path_tokens(path: str) -> list[str | int]:
    """`body.data_list[1].properties["a.b"]` -> ['body', 'data_list', 1, 'properties', 'a.b']."""
    head = re.match(r"[^.\[]+", path)
    if not head:
        return []
    tokens: list[str | int] = [head.group()]
    for m in _TOKEN.finditer(path, head.end()):
        if m.group(1) is not None:
            tokens.append(m.group(1))
        elif m.group(2) is not None:
            tokens.append(int(m.group(2)))
        else:
            tokens.append(json.loads(m.group(3)))
    return tokens


def _clean(text: str) -> str:
    return text.replace(_MARK_OPEN, "\\ue000").replace(_MARK_CLOSE, "\\ue001")


def _preview(value: bytes | str, limit: int = PREVIEW_CHARS) -> str:
    text = _clean(codecs.binary_text(value[:limit]) if isinstance(value, bytes) else value[:limit])
    return text + (f"… ({len(value):,} in all)" if len(value) > limit else "")


def _as_text(value: Any) -> str:
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def _as_bytes(value: Any) -> bytes:
    return value if isinstance(value, bytes) else str(value).encode("utf-8", "surrogateescape")


def _size(value: Any) -> str:
    n = len(value) if isinstance(value, (bytes, str)) else 0
    return f"{n:,} {'bytes' if isinstance(value, bytes) else 'characters'}"


_PARSE_LABELS = {
    "json": "Parse the JSON",
    "protobuf": "Parse the Protocol Buffers message (keys are field numbers)",
    "msgpack": "Parse the MessagePack",
}


class _Replay:
    """Undoes one finding's chain on its request, one layer at a time."""

    def __init__(self, record: HttpRecord, tokens: list[str | int], redacted: bool, value: str):
        self.record, self.tokens, self.redacted, self.value = record, tokens, redacted, value
        self.steps: list[Step] = []

    def show(
        self, title: str, value: Any, *, structure: Any = None, path: list | None = None, final: bool = False
    ) -> None:
        if structure is not None:
            target = self.value if final else None
            text = render_structure(structure, path or [], redacted=self.redacted, target=target)
        elif self.redacted:
            size = "" if "bytes" in title or "characters" in title else f"{_size(value)}, "
            self.steps.append(Step(f"{title} {size}not shown in a redacted report."))
            return
        else:
            text = _preview(value)
        plain = text.replace(_MARK_OPEN, "»").replace(_MARK_CLOSE, "«")
        self.steps.append(Step(title, marked_html(text), plain))

    def start(self) -> Any:
        r, tokens = self.record, self.tokens
        where = tokens.pop(0) if tokens else "body"
        if where == "body":
            self.show(f"The request body as sent ({len(r.request_body):,} bytes):", r.request_body)
            return r.request_body
        key_token = tokens.pop(0) if tokens else ""
        key = str(key_token)
        if where == "query":
            value = next((v for k, v in parse_qsl(r.query, keep_blank_values=True) if k == key), None)
            self.show(f"The URL's query string; parameter {key!r} holds:", value or "")
            return value
        if where == "header":
            value = r.header(key) or ""
            if key in ("authorization", "proxy-authorization") and " " in value.strip():
                value = value.strip().partition(" ")[2].strip()
            self.show(f"The request header {key!r} holds:", value)
            return value
        if where == "cookie":
            for item in (r.header("cookie") or "").split(";"):
                name, _, value = item.strip().partition("=")
                if name == key:
                    self.show(f"The cookie {key!r} holds:", value)
                    return value.strip('"')
            return None
        if where == "url_path" and isinstance(key_token, int):
            segments = [s for s in r.url_path.split("/") if s]
            i = key_token
            value = unquote(segments[i]) if i < len(segments) else None
            self.show(f"Segment {i + 1} of the URL path:", value or "")
            return value
        return None

    def layer(self, name: str, cur: Any, following: list[str]) -> Any:
        if name in COMPRESSIONS:
            res = codecs.decompress(name, _as_bytes(cur), MAX_DECOMPRESSED)
            if res is None:
                return None
            before = len(_as_bytes(cur))
            self.show(f"Undo {name} compression ({before:,} -> {len(res.data):,} bytes):", res.data)
            return res.data
        if name in ("base64", "base64url"):
            text = _as_text(cur).strip()
            decoded = codecs.unbase64(text if " " not in text else text.replace(" ", "+"))
            if decoded is None:
                return None
            self.show(f"Decode {name} ({len(text):,} characters -> {len(decoded[1]):,} bytes):", decoded[1])
            return decoded[1]
        if name == "hex":
            raw = codecs.unhex(_as_text(cur).strip())
            if raw is None:
                return None
            self.show(f"Decode hexadecimal text ({len(raw):,} bytes):", raw)
            return raw
        if name == "urlencoded":
            text = unquote(_as_text(cur))
            self.show("Undo percent-encoding:", text)
            return text
        if name == "form":
            pairs = parse_qsl(_as_text(cur), keep_blank_values=True)
            key = str(self.tokens.pop(0)) if self.tokens else ""
            value = next((v for k, v in pairs if k == key), None)
            if value is None:
                return None
            fields = dict(pairs)
            self.show(
                f"Split the form fields ({len(pairs)}); the field is {key!r}:",
                None,
                structure=fields,
                path=[key],
            )
            return value
        if name == "jwt":
            parts = codecs.split_jwt(_as_text(cur))
            part = self.tokens.pop(0) if self.tokens else ""
            if parts is None or part not in ("jwt_header", "jwt_payload"):
                return None
            raw = parts[0] if part == "jwt_header" else parts[1]
            self.show(f"Split the JSON Web Token and decode its {part[4:]} (Base64):", raw)
            return raw
        if name in ("json", "protobuf", "msgpack"):
            if name == "json":
                try:
                    obj = json.loads(_as_text(cur).strip().lstrip("\ufeff"))
                except (ValueError, RecursionError):
                    return None
            elif name == "protobuf":
                obj = codecs.parse_protobuf(_as_bytes(cur))
            else:
                obj = codecs.parse_msgpack(_as_bytes(cur))
            if obj is None:
                return None
            walked, leaf = self.descend(obj)
            final = not following and not self.tokens
            label = _PARSE_LABELS[name]
            self.show(f"{label}; the field is highlighted:", None, structure=obj, path=walked, final=final)
            return leaf
        return None  # multipart, grpc, …: not replayed

    def descend(self, obj: Any) -> tuple[list, Any]:
        walked: list = []
        while self.tokens and isinstance(obj, (dict, list)):
            token = self.tokens[0]
            if isinstance(obj, dict):
                match = next((k for k in obj if (k if isinstance(k, str) else str(k)) == str(token)), None)
                if match is None:
                    break
                obj = obj[match]
                walked.append(match)
            else:
                if not isinstance(token, int) or token >= len(obj):
                    break
                obj = obj[token]
                walked.append(token)
            self.tokens.pop(0)
        return walked, obj


def worked_example(record: HttpRecord, finding: dict[str, Any], *, redacted: bool = False) -> Example | None:
    """The example for one finding of `record`, or None when the decoder no longer yields the field."""
    decoded = decode_request(record)
    fields = [f for f in decoded.fields if f.path == finding["field"]]
    fields = fields or [f for f in decoded.fields if f.path.startswith(finding["field"] + "[")]  # a list
    if not fields:
        return None
    chain = list(fields[0].encodings)
    request = f"{record.method} {finding['url'] if redacted else record.url}"
    replay = _Replay(record, path_tokens(finding["field"]), redacted, str(finding["value"]))
    cur = replay.start()
    note = ""
    for i, name in enumerate(chain):
        if cur is None:
            break
        cur = replay.layer(name, cur, chain[i + 1 :])
        if cur is None:
            rest = " > ".join(chain[i:])
            note = f"The remaining layers ({rest}) are undone by the decoder but not shown here."
            break
    value = str(finding["value"]) if redacted else _as_text(fields[0].value)
    shown = _MARK_OPEN + _clean(value[:PREVIEW_CHARS]) + _MARK_CLOSE
    replay.steps.append(Step(f"The value at {finding['field']}:", marked_html(shown), value[:PREVIEW_CHARS]))
    return Example(request, replay.steps, note)


# -- showing a decoded structure with the field marked -----------------------------------------------

_SAFE_KEY = re.compile(r"[A-Za-z_$][\w$.-]{0,40}")  # no "@": a key may be an e-mail address
_ID_LIKE = re.compile(r"[0-9a-fA-F-]{8,}|\d{6,}")


def _key_text(key: Any, redacted: bool) -> str:
    text = key if isinstance(key, str) else str(key)
    if redacted and (not _SAFE_KEY.fullmatch(text) or _ID_LIKE.search(text)):
        return '"…"'
    return json.dumps(_clean(text), ensure_ascii=False)


def _leaf_text(value: Any, redacted: bool, limit: int) -> str:
    if redacted:
        return "…"
    if isinstance(value, bytes):
        text = codecs.binary_text(value[:limit])
        return json.dumps(_clean(text), ensure_ascii=False) + ("…" if len(value) > limit else "")
    if isinstance(value, str):
        cut = value[:limit]
        return json.dumps(_clean(cut), ensure_ascii=False) + ("…" if len(value) > limit else "")
    if value is None or isinstance(value, (bool, int, float)):
        return json.dumps(value)
    return json.dumps(_clean(str(value))[:limit], ensure_ascii=False)


def render_structure(obj: Any, path: list, *, redacted: bool = False, target: str | None = None) -> str:
    """`obj` as indented JSON around the field at `path`, the field between mark sentinels.

    Focused and bounded: on the field's path every key of an object is shown (up to MAX_KEYS), but
    containers off the path are folded to a count, and of a list on the path only the item on it.
    target: the finding's value when `path` reaches it (shown as the finding has it, so redacted
    when the report is); None when the node at `path` is still encoded (a later step opens it).
    """
    out: list[str] = []
    budget = [STRUCTURE_CHARS]

    def emit(text: str) -> None:
        budget[0] -= len(text)
        out.append(text)

    def folded(node: Any) -> str:
        if isinstance(node, dict):
            return "{}" if not node else f"{{… {len(node)} keys}}"
        return "[]" if not node else f"[… {len(node)} items]"

    def walk(node: Any, rest: list | None, indent: int) -> None:
        pad = "  " * indent
        if rest is not None and not rest:  # the field itself
            if isinstance(node, (dict, list, tuple)) and node and not redacted:
                emit(_MARK_OPEN + _clean(json.dumps(node, ensure_ascii=False, default=str)[:PREVIEW_CHARS]))
                emit(_MARK_CLOSE)
            elif redacted:
                emit(
                    _MARK_OPEN
                    + (json.dumps(_clean(target), ensure_ascii=False) if target is not None else "…")
                )
                emit(_MARK_CLOSE)
            else:
                emit(_MARK_OPEN + _leaf_text(node, False, PREVIEW_CHARS) + _MARK_CLOSE)
            return
        if rest is None or not isinstance(node, (dict, list, tuple)) or not node:
            emit(
                folded(node)
                if isinstance(node, (dict, list, tuple))
                else _leaf_text(node, redacted, LEAF_CHARS)
            )
            return
        if budget[0] <= 0:
            emit(folded(node))
            return
        if isinstance(node, dict):
            keys = list(node)
            shown = keys[:MAX_KEYS]
            if rest[0] in node and rest[0] not in shown:
                shown.append(rest[0])
            emit("{\n")
            for n, k in enumerate(shown):
                emit(f"{pad}  {_key_text(k, redacted)}: ")
                walk(node[k], rest[1:] if k == rest[0] else None, indent + 1)
                emit(",\n" if n < len(shown) - 1 or len(keys) > len(shown) else "\n")
            if len(keys) > len(shown):
                emit(f"{pad}  … {len(keys) - len(shown)} more keys\n")
            emit(f"{pad}}}")
            return
        i = rest[0] if isinstance(rest[0], int) and rest[0] < len(node) else 0
        emit("[\n")
        if i:
            emit(f"{pad}  … {i} item{'s' if i > 1 else ''} before\n")
        emit(pad + "  ")
        walk(node[i], rest[1:] if i == rest[0] else None, indent + 1)
        emit("\n")
        if len(node) > i + 1:
            emit(f"{pad}  … {len(node) - i - 1} item{'s' if len(node) - i > 2 else ''} after\n")
        emit(f"{pad}]")

    walk(obj, list(path), 0)
    return "".join(out)


def marked_html(text: str) -> Markup:
    """Escaped text with the sentinel-marked field as <mark>."""
    return Markup(str(escape(text)).replace(_MARK_OPEN, "<mark>").replace(_MARK_CLOSE, "</mark>"))


# -- for the report -----------------------------------------------------------------------------------


def worked_examples(
    groups: pd.DataFrame, flows: pd.DataFrame, *, redacted: bool = False, per_app: int = 60
) -> dict[str, Example]:
    """evidence_id -> its worked example, for the first `per_app` groups of each app."""
    if groups.empty or flows.empty or "source" not in flows.columns:
        return {}
    chosen = groups.groupby("app", sort=False).head(per_app)
    source_of = dict(zip(flows["flow_id"], flows["source"], strict=True))
    wanted: dict[str, set[str]] = {}
    for flow_id in chosen["example_flow_id"]:
        source = source_of.get(flow_id)
        if source:
            wanted.setdefault(str(source), set()).add(str(flow_id))
    records = find_records(wanted)
    examples: dict[str, Example] = {}
    for g in chosen.to_dict("records"):
        record = records.get(g["example_flow_id"])
        if record is None:
            continue
        finding = {"field": g["example_field"], "value": g["example_value"], "url": g["example_url"]}
        try:
            example = worked_example(record, finding, redacted=redacted)
        except Exception:  # an example is a courtesy: never lose the report over one
            example = None
        if example is not None:
            examples[g["evidence_id"]] = example
    return examples
