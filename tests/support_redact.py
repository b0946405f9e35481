"""Helpers for the redaction tests: every form of a secret, and a capture that hides it in many places.

`forms_of` is written independently of analysis.redact (from the standard library only), so the
tests check the redactor against a second statement of what "any form" means.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path
from urllib.parse import quote, unquote

from mitmproxy import http
from mitmproxy.test import tflow

from tests.support_sources import write_dump


def _b64_inside(raw: bytes) -> list[str]:
    """The characters of base64(prefix + raw + suffix) that depend on `raw` alone, per alignment."""
    out = []
    for pad in range(3):
        enc = base64.b64encode(b"\xff" * pad + raw + b"\xff\xff\xff").decode()
        enc2 = base64.b64encode(b"\x00" * pad + raw + b"\x00\x00\x00").decode()
        # keep the longest run where both encodings agree: those characters come from `raw` only
        common = [i for i in range(len(enc)) if enc[i] == enc2[i]]
        if not common:
            continue
        run, best, start = [], [], None
        for i in common:
            if start is not None and i == run[-1] + 1:
                run.append(i)
            else:
                run, start = [i], i
            if len(run) > len(best):
                best = list(run)
        core = enc[best[0] : best[-1] + 1]
        if len(core) >= 8:
            out += [core, core.replace("+", "-").replace("/", "_")]
    return out


def forms_of(secret: str) -> tuple[list[str], list[str]]:
    """(case-insensitive forms, case-sensitive forms) a redacted output must not contain."""
    folded, exact = [], []
    for variant in {secret, secret.lower(), secret.upper()}:
        raw = variant.encode()
        folded += [variant, quote(variant, safe=""), raw.hex()]
        folded += ["".join(f"\\u{ord(c):04x}" for c in variant)]
        for name in ("md5", "sha1", "sha256"):
            digest = hashlib.new(name, raw).digest()
            folded.append(digest.hex())
            exact.append(base64.b64encode(digest).decode().rstrip("="))
        exact += _b64_inside(raw)
    return sorted(set(folded)), sorted(set(exact))


def _views(text: str) -> list[str]:
    """`text` as written, percent-decoded (once and twice) and with JSON \\u escapes undone."""
    unescaped = re.sub(r"\\{1,2}u([0-9a-fA-F]{4})", lambda m: chr(int(m.group(1), 16)), text)
    once = unquote(text)
    return [text, once, unquote(once), unescaped, unquote(unescaped)]


def leaks(text: str, secret: str) -> list[str]:
    """The forms of `secret` present in `text`, also once its escapes are undone."""
    folded, exact = forms_of(secret)
    found = []
    for view in _views(text):
        lowered = view.lower()
        found += [f for f in folded if f.lower() in lowered] + [f for f in exact if f in view]
    return sorted(set(found))


def encode(secret: str, how: str, salt: int = 0) -> str:
    """`secret` hidden the way `how` says (as an app would put it in a URL, a header or a body)."""
    raw = secret.encode()
    prefix = bytes([0x41 + salt % 26]) * (salt % 3)
    if how == "upper":
        return secret.upper()
    if how == "lower":
        return secret.lower()
    if how == "percent-upper":
        return "".join(f"%{b:02X}" for b in raw)
    if how == "percent-lower":
        return "".join(f"%{b:02x}" for b in raw)
    if how == "percent-partial":  # only the punctuation encoded, as quote() does, in lower case
        return quote(secret, safe="").lower() if not secret.isalnum() else secret
    if how == "base64":
        return base64.b64encode(prefix + raw + b"::tail").decode()
    if how == "base64url":
        return base64.urlsafe_b64encode(prefix + raw + b"::tail").decode().rstrip("=")
    if how == "hex-upper":
        return raw.hex().upper()
    if how == "hex-lower":
        return raw.hex()
    if how == "json-escape":
        return "".join(f"\\u{ord(c):04X}" if salt % 2 else f"\\u{ord(c):04x}" for c in secret)
    if how in ("md5", "sha1", "sha256"):
        return hashlib.new(how, raw).hexdigest()
    raise ValueError(how)


ENCODINGS = (
    "upper",
    "lower",
    "percent-upper",
    "percent-lower",
    "percent-partial",
    "base64",
    "base64url",
    "hex-upper",
    "hex-lower",
    "json-escape",
    "md5",
    "sha1",
    "sha256",
)


def write_capture(
    directory: Path, secrets: dict[str, str], hidden: list[tuple[str, str]], extra_urls: list[str] = ()
) -> Path:
    """A capture directory whose flows carry `secrets` ({profile key: value}) in plain sight once, and
    each (value, encoded form) of `hidden` in a query, a header, a JSON body and response headers."""
    directory.mkdir(parents=True, exist_ok=True)
    flows = []

    def flow(path: str, headers=(), body: bytes = b"", response_headers=()) -> None:
        f = tflow.tflow(resp=True)
        f.request = http.Request.make(
            "POST" if body else "GET", "https://t.example.com" + path, body, dict(headers)
        )
        f.response = http.Response.make(200, b"", dict(response_headers))
        f.metadata["phonehome"] = {
            "session": "redact",
            "app": "com.example.app",
            "mode": "normal",
            "phase": None,
        }
        flows.append(f)

    plain = "&".join(f"{key}={quote(value, safe='')}" for key, value in secrets.items())
    flow("/collect?" + plain)
    for i, (_value, form) in enumerate(hidden):
        flow(
            f"/t/{i}?d={quote(form, safe='%')}&n={i}",
            headers=[("X-Trace", form), ("Content-Type", "application/json")],
            body=('{"blob": "' + form + '", "n": ' + str(i) + "}").encode(),
            response_headers=[
                ("X-Device-Id", form),
                ("Location", "https://r.example/?id=" + quote(form, safe="%")),
            ],
        )
    for url in extra_urls:
        flow(url)
    write_dump(directory / "flows.mitm", flows)
    profile = {k: ([v] if k in ("imei", "mac") else v) for k, v in secrets.items()}
    (directory / "profile.json").write_text(json.dumps(profile))
    return directory


def output_text(directory: Path) -> str:
    """Every output file in `directory` as text (Parquet tables as the text of all their cells)."""
    import html

    import pandas as pd

    parts = []
    for path in sorted(directory.rglob("*")):
        if not path.is_file():
            continue
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            parts += [str(v) for column in frame.columns for v in frame[column].tolist()]
            parts += [str(c) for c in frame.columns]
        else:
            text = path.read_bytes().decode("utf-8", "replace")
            parts += [text, html.unescape(text)]
    return "\n".join(parts)
