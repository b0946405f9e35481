"""analysis.protobuf_wire.framing_ok never rejects what blackboxprotobuf accepts, and rejects most noise.

The reference is blackboxprotobuf.decode_message itself: codecs.parse_protobuf now asks
framing_ok first, so comparing against it would prove nothing.
"""

from __future__ import annotations

import random
from pathlib import Path

from mitmproxy.io import FlowReader

from phonehome.analysis.decode import codecs, decode_request
from phonehome.analysis.protobuf_wire import framing_ok
from phonehome.analysis.records import Labels
from phonehome.analysis.sources.mitm import http_record

ROOT = Path(__file__).parent.parent
DUMPS = [
    ROOT / "captures" / "sample-mint-browser" / "flows.mitm",
    *sorted((ROOT / "tests" / "data" / "real").glob("*.mitm")),
]


def parser_accepts(data: bytes) -> bool:
    """blackboxprotobuf itself, as codecs.parse_protobuf called it before the framing check
    (parse_protobuf now calls framing_ok first, so it cannot be the reference)."""
    import blackboxprotobuf

    try:
        message, _typedef = blackboxprotobuf.decode_message(data)
    except Exception:
        return False
    return isinstance(message, dict) and bool(message)


def offered_to_the_parser(monkeypatch) -> list[bytes]:
    """Every buffer the decoder hands to parse_protobuf while decoding the real captures."""
    seen: list[bytes] = []
    parse = codecs.parse_protobuf

    def spy(data: bytes):
        seen.append(bytes(data))
        return parse(data)

    monkeypatch.setattr(codecs, "parse_protobuf", spy)
    for dump in DUMPS:
        with dump.open("rb") as fo:
            for f in FlowReader(fo).stream():
                if f.type == "http":
                    decode_request(http_record(f, str(dump), Labels(None, None, "normal", None)))
    monkeypatch.setattr(codecs, "parse_protobuf", parse)
    return seen


def test_never_rejects_what_the_parser_accepts_on_real_values(monkeypatch):
    buffers = offered_to_the_parser(monkeypatch)
    accepted = [b for b in buffers if parser_accepts(b)]
    assert accepted, "the sample's Firebase body is protobuf"
    assert all(framing_ok(b) for b in accepted)


def test_never_rejects_what_the_parser_accepts_on_noise_and_rejects_most_of_it():
    rng = random.Random(15)
    rejected = accepted = 0
    for _ in range(20_000):
        data = rng.randbytes(rng.randint(2, 40))
        if data[0] >> 3 == 0 or data[0] & 7 not in (0, 1, 2, 5):
            continue  # what codecs.protobuf_looks_possible already turns away
        ok = framing_ok(data)
        if parser_accepts(data):
            accepted += 1
            assert ok, data.hex()
        rejected += not ok
    assert accepted > 100, "noise that happens to parse is covered"
    assert rejected > 5_000, "the check earns its keep"


def test_hand_built_messages():
    def varint(n: int) -> bytes:
        out = bytearray()
        while True:
            out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
            n >>= 7
            if not n:
                return bytes(out)

    def field(number: int, value: bytes | int) -> bytes:
        if isinstance(value, int):
            return varint(number << 3) + varint(value)
        return varint(number << 3 | 2) + varint(len(value)) + value

    message = field(1, 150) + field(2, b"hello") + field(3, field(1, 2**40)) + field(300, b"x" * 200)
    assert parser_accepts(message) and framing_ok(message)
    assert not framing_ok(message[:-1]), "a field cut short"
    assert not framing_ok(message + b"\x08"), "a tag with no value"
    assert not framing_ok(b"\x0f\x00"), "wire type 7"
    assert not framing_ok(b"\x08" + b"\xff" * 11), "an 11-byte varint"
