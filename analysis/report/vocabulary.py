"""Plain-language names for the codes in the tables (data types, evidence, encodings, locations).

The tables keep the codes (DESIGN.md "Findings"): they are what scripts and other tools match on.
A reader of the report gets words instead, from this one place, so HTML, Markdown and the notebook
say the same thing. A code not listed here is shown as it is (never dropped, never guessed).
"""

from __future__ import annotations

DATA_TYPES: dict[str, str] = {
    "url": "visited web addresses",
    "search_query": "search terms",
    "device_id.imei": "IMEI (the phone's hardware number)",
    "device_id.android_id": "Android ID",
    "device_id.advertising_id": "advertising ID",
    "device_id.oaid": "OAID (open anonymous device identifier)",
    "device_id.serial": "serial number",
    "device_id.mac": "MAC address (Wi-Fi/Bluetooth hardware address)",
    "device_id.imsi": "IMSI (SIM subscriber number)",
    "device_id.iccid": "ICCID (SIM card number)",
    "device_id.other": "other lasting identifier",
    "token": "login or session token",
    "user_id": "user account ID",
    "location.gps": "GPS location",
    "location.wifi": "Wi-Fi location (nearby networks)",
    "contact.email": "e-mail address",
    "contact.phone": "phone number",
    "network.local_ip": "local network address",
    "device.model": "phone model",
    "device.os_version": "Android version",
    "app.id": "app name",
    "app.installed_list": "list of installed apps",
}

EVIDENCE: dict[str, str] = {
    "known-value": "matches a value of the test phone (profile)",
    "key-name": "the field's name says what it is",
    "value-shape": "the value has the shape of this kind of data",
    "persistence": "the same value recurs across sessions or modes",
    "schema": "the endpoint's documented format",
    "canary": "a unique test value planted for this run",
}

ENCODINGS: dict[str, str] = {
    "form": "form fields",
    "query": "query string",
    "urlencoded": "percent-encoding",
    "base64": "Base64",
    "base64url": "URL-safe Base64",
    "hex": "hexadecimal text",
    "gzip": "gzip compression",
    "zlib": "zlib compression",
    "deflate": "deflate compression",
    "brotli": "Brotli compression",
    "zstd": "Zstandard compression",
    "json": "JSON",
    "protobuf": "Protocol Buffers (binary)",
    "msgpack": "MessagePack (binary)",
    "jwt": "JSON Web Token",
    "multipart": "multipart form",
    "grpc": "gRPC frame",
}

LOCATIONS: dict[str, str] = {
    "url_path": "URL path",
    "query": "URL query string",
    "header": "HTTP header",
    "cookie": "cookie",
    "body": "request body",
}

CONFIDENCE: dict[str, str] = {
    "high": "high",
    "medium": "medium",
    "low": "low (a guess from the name or shape alone)",
}

CATEGORIES: dict[str, str] = {
    "analytics": "analytics",
    "advertising": "advertising",
    "crash_reporting": "crash reporting",
    "telemetry": "telemetry",
    "social": "social network",
    "cdn": "content delivery",
    "push": "push notifications",
    "api": "app API",
    "unknown": "unknown",
}

COVERAGE_KINDS: dict[str, str] = {
    "tls_failed": "TLS refused: contents not seen",
    "sni_only": "encrypted, only the host name seen",
    "dns": "looked up only (DNS)",
    "tcp": "non-HTTP connection",
    "udp": "UDP relayed without decrypting",
    "opaque": "sent, but no decoder could open it",
    "decode": "decoding stopped early: the rest not examined",
}

#: Which vocabulary a table column's codes come from.
COLUMN_VOCABULARY: dict[str, dict[str, str]] = {
    "data_type": DATA_TYPES,
    "evidence": EVIDENCE,
    "location": LOCATIONS,
    "category": CATEGORIES,
    "kind": COVERAGE_KINDS,
}


def data_type_name(code: str) -> str:
    """`device_id.imei` -> 'IMEI (the phone's hardware number)'; unknown codes as they are."""
    return DATA_TYPES.get(code, code)


def evidence_words(code: str) -> str:
    """`key-name+persistence` -> the reasons in words, joined by '; '."""
    return "; ".join(EVIDENCE.get(part, part) for part in str(code).split("+") if part)


def encoding_words(chain: str) -> str:
    """`form>base64>gzip>json` -> 'form fields, then Base64, then gzip compression, then JSON'."""
    parts = [ENCODINGS.get(p, p) for p in str(chain).split(">") if p]
    return ", then ".join(parts) if parts else "plain text"


def label(column: str, code: object) -> str | None:
    """The plain-language name of `code` in `column`, or None when the column has no vocabulary."""
    vocabulary = COLUMN_VOCABULARY.get(column)
    if vocabulary is None:
        return None
    text = str(code)
    if column == "evidence":
        return evidence_words(text)
    return vocabulary.get(text, text)
