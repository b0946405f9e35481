"""Fuzz campaign over the decoder (issue 9): arbitrary and hostile input never crashes it, never
hangs it, and never makes it hold more memory than its Limits allow.

Every test counts the inputs it tried; the totals are printed at the end of the module (run with
`-s` to see them). A longer campaign is `python benchmarks/fuzz_decode.py`. Inputs worth keeping
live in tests/data/decode/corpus/ (one JSON file each) and are replayed here.
"""

from __future__ import annotations

import base64
import functools
import gzip
import json
import tracemalloc
import zlib
from collections import Counter
from pathlib import Path

import brotli
import msgpack
import pytest
import zstandard
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from phonehome.analysis.decode import DEFAULT_LIMITS, Limits, codecs, decode_request, decode_value
from tests.support_decode import pb_string, record, varint

CORPUS = Path(__file__).parent / "data" / "decode" / "corpus"
CHAIN_NAMES = {
    "form", "json", "multipart", "base64", "base64url", "hex", "gzip", "zlib", "deflate",
    "brotli", "zstd", "protobuf", "msgpack", "jwt", "urlencoded",
}  # fmt: skip
LOCATIONS = {"url_path", "query", "header", "cookie", "body"}
CONTENT_TYPES = [
    None,
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "application/x-protobuf",
    "application/x-msgpack",
    "application/octet-stream",
    "text/plain",
]
CONTENT_ENCODINGS = [None, "gzip", "deflate", "br", "zstd", "gzip, br", "identity", "bogus"]
TRIED: Counter[str] = Counter()
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=list(HealthCheck))


@pytest.fixture(scope="module", autouse=True)
def _report_counts():
    yield
    print(f"\n[decode fuzz] inputs tried: {dict(TRIED)}, total {sum(TRIED.values())}")


def check(decoded, limits: Limits = DEFAULT_LIMITS) -> None:
    """The invariants every decode must satisfy, whatever the input."""
    assert not any(n.startswith("internal error") for n in decoded.notes), decoded.notes
    assert len(decoded.fields) <= limits.max_fields
    for f in decoded.fields:
        assert f.location in LOCATIONS
        assert isinstance(f.value, str) and len(f.value) <= limits.max_value_chars
        assert set(f.encodings) <= CHAIN_NAMES, f.encodings
        assert len(f.encodings) <= limits.max_depth + 2  # a JWT adds jwt>json at the last layer
        assert f.path.startswith(f.location)


@FUZZ
@given(
    st.binary(max_size=2048),
    st.sampled_from(CONTENT_TYPES),
    st.sampled_from(CONTENT_ENCODINGS),
)
def test_arbitrary_body_bytes(body, ctype, cenc):
    headers = {}
    if ctype:
        headers["Content-Type"] = ctype
    if cenc:
        headers["Content-Encoding"] = cenc
    TRIED["arbitrary body"] += 1
    check(decode_request(record("/", headers=headers, body=body)))


@FUZZ
@given(st.text(max_size=300), st.text(max_size=300), st.text(max_size=200))
def test_arbitrary_text_in_url_headers_and_cookies(path_text, header_value, cookie):
    TRIED["arbitrary text"] += 1
    rec = record(
        "/" + path_text.replace("?", "/") + "?" + header_value,
        headers=[("X-Thing", header_value), ("Cookie", cookie), ("Authorization", "Bearer " + cookie)],
    )
    check(decode_request(rec))


# hostile nested input: random junk wrapped in random real layers, so deeper decoders see it
_WRAPPERS = {
    "gzip": gzip.compress,
    "zlib": zlib.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
    "b64": lambda d: base64.b64encode(d),
    "b64url": lambda d: base64.urlsafe_b64encode(d).rstrip(b"="),
    "hex": lambda d: d.hex().encode(),
    "json": lambda d: json.dumps({"k": d.decode("utf-8", "replace"), "l": [d.decode("latin-1")]}).encode(),
    "msgpack": lambda d: msgpack.packb({"k": d, "s": d.decode("latin-1")}),
    "protobuf": lambda d: pb_string(1, d) + pb_string(2, d[:10]),
    "truncate": lambda d: d[: len(d) // 2],
    "flip": lambda d: bytes([d[0] ^ 0xFF]) + d[1:] if d else d,
}


@FUZZ
@given(st.binary(max_size=512), st.lists(st.sampled_from(sorted(_WRAPPERS)), max_size=8), st.booleans())
def test_hostile_nested_layers(core, layers, as_query):
    data = core
    for name in layers:
        data = _WRAPPERS[name](data)
    TRIED["hostile nested"] += 1
    if as_query:
        check(decode_value(data.decode("latin-1"), location="query", path="query.x"))
    else:
        check(decode_request(record("/", body=data)))


@functools.cache
def _bombs() -> dict[str, tuple[dict[str, str], bytes]]:
    zeros = b"\0" * (32 << 20)
    gz = gzip.compress(zeros, 1)
    return {
        "gzip-magic": ({}, gz),
        "gzip-multi-member": ({}, gz + gz),
        "zlib-magic": ({}, zlib.compress(zeros, 1)),
        "zstd-magic": ({}, zstandard.ZstdCompressor(level=1).compress(zeros)),
        "brotli-header": ({"Content-Encoding": "br"}, brotli.compress(zeros, quality=1)),
        "gzip-header-twice": ({"Content-Encoding": "gzip, gzip"}, gzip.compress(gz)),
        "gzip-in-base64-in-json": (
            {},
            json.dumps({"a": base64.b64encode(gz).decode()} | {"b": base64.b64encode(gz).decode()}).encode(),
        ),
    }


@pytest.mark.parametrize("name", list(_bombs()))
def test_decompression_bombs_are_bounded(name):
    headers, body = _bombs()[name]
    limits = Limits(max_decompressed_bytes=4 << 20)
    TRIED["bomb"] += 1
    tracemalloc.start()
    try:
        decoded = decode_request(record("/b?id=kept", headers=headers, body=body), limits)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    check(decoded, limits)
    assert decoded.truncated
    assert any("max_decompressed_bytes" in n for n in decoded.notes)
    assert any(f.value == "kept" for f in decoded.fields)
    # bound + one brotli meta-block of overshoot + copies; the bomb expands to 32 MiB
    assert peak < 64 << 20, f"{name}: peak {peak / 2**20:.1f} MiB"


def test_deep_nesting_everywhere():
    TRIED["deep"] += 5
    deep_json = ("[" * 100_000 + "]" * 100_000).encode()
    check(decode_request(record(body=deep_json, headers={"Content-Type": "application/json"})))
    msg = b"\x12\x04abcd"
    for _ in range(3000):
        msg = b"\x0a" + varint(len(msg)) + msg
    check(decode_request(record(body=msg, headers={"Content-Type": "application/x-protobuf"})))
    packed = b"\x91" * 5000 + b"\x01"  # fixarray of fixarray of ... 5000 deep
    check(decode_request(record(body=packed, headers={"Content-Type": "application/x-msgpack"})))
    layered = b"https://deep.example/"
    for _ in range(20):  # 1.33x per layer: 20 layers is ~6 KB
        layered = base64.b64encode(layered)
    decoded = decode_value(layered.decode(), location="query", path="query.x")
    check(decoded)
    assert decoded.truncated
    nested_form = "v"
    for _ in range(40):
        nested_form = "a=1&b=" + nested_form.replace("%", "%25").replace("&", "%26").replace("=", "%3D")
    check(decode_value(nested_form, location="query", path="query.x"))


def test_many_fields_and_big_values_are_cut():
    limits = Limits(max_fields=1000, max_value_chars=1000)
    body = json.dumps({"a": list(range(50_000)), "b": "x" * 50_000}).encode()
    TRIED["big"] += 2
    decoded = decode_request(record(body=body), limits)
    check(decoded, limits)
    assert decoded.truncated and len(decoded.fields) == 1000
    decoded = decode_request(record(body=json.dumps({"b": "word " * 20_000}).encode()), limits)
    check(decoded, limits)
    assert decoded.truncated and decoded.fields[-1].value.startswith("word word")


def corpus_files() -> list[Path]:
    return sorted(CORPUS.glob("*.json"))


def test_corpus_exists():
    assert len(corpus_files()) >= 5


@pytest.mark.parametrize("path", corpus_files(), ids=lambda p: p.stem)
def test_corpus_replays_cleanly(path):
    case = json.loads(path.read_text())
    TRIED["corpus"] += 1
    rec = record(
        case.get("path", "/"),
        headers=[tuple(h) for h in case.get("headers", [])],
        body=base64.b64decode(case.get("body_b64", "")),
    )
    decoded = decode_request(rec)
    check(decoded)
    for expected in case.get("expect_values", []):
        assert any(f.value == expected for f in decoded.fields), expected


# --- issue 15: the streamed codecs, against their reference compressors -----------------------


def _gzip_members(data: bytes, cut: int) -> bytes:
    return b"".join(gzip.compress(data[i : i + cut], mtime=0) for i in range(0, max(len(data), 1), cut))


def _zstd_frames(data: bytes, cut: int) -> bytes:
    comp = zstandard.ZstdCompressor()
    return b"".join(comp.compress(data[i : i + cut]) for i in range(0, max(len(data), 1), cut))


def _brotli_flushed(data: bytes, cut: int) -> bytes:
    comp = brotli.Compressor(quality=1)
    return (
        b"".join(comp.process(data[i : i + cut]) + comp.flush() for i in range(0, len(data), cut))
        + comp.finish()
    )


_STREAMS = {"gzip": _gzip_members, "zstd": _zstd_frames, "brotli": _brotli_flushed}


@FUZZ
@given(
    data=st.binary(max_size=40_000)
    | st.builds(lambda n, b: b * n, st.integers(1, 60_000), st.binary(min_size=1, max_size=3)),
    kind=st.sampled_from(sorted(_STREAMS)),
    cut=st.integers(1, 70_000),
    bound=st.integers(0, 80_000),
)
# more members than the cap: the output bound first (the CI failure), exactly at the cap, past it
@example(data=b"\0" * 5000, kind="gzip", cut=1, bound=0)
@example(data=b"\0" * 9000, kind="gzip", cut=2, bound=8191)
@example(data=b"\0" * 9000, kind="gzip", cut=2, bound=8192)
def test_streamed_codecs_give_the_prefix_up_to_the_bound(data, kind, cut, bound):
    TRIED["codec stream"] += 1
    res = codecs.decompress(kind, _STREAMS[kind](data, cut), bound)
    assert res is not None
    members = -(-max(len(data), 1) // cut)
    at_cap = codecs.MAX_GZIP_MEMBERS * cut  # output of the members read before the member cap
    if kind == "gzip" and members > codecs.MAX_GZIP_MEMBERS and bound >= at_cap:
        # the member cap comes first: cut there, and said so (the codec names its own cap)
        assert res.truncated and "MAX_GZIP_MEMBERS" in res.bound and res.data == data[:at_cap]
        return
    # otherwise the output bound comes first: exactly the prefix; an empty label means the
    # caller's max_out, which the caller names (walk.py: max_decompressed_bytes)
    assert res.data == data[:bound]
    assert res.truncated == (len(data) > bound)
    assert res.bound == ""


@FUZZ
@given(data=st.binary(min_size=1, max_size=5_000), kind=st.sampled_from(sorted(_STREAMS)), at=st.floats(0, 1))
def test_cut_or_damaged_codec_streams_never_raise(data, kind, at):
    TRIED["codec damaged"] += 1
    stream = bytearray(_STREAMS[kind](data, 300))
    pos = int(at * (len(stream) - 1))
    for damaged in (bytes(stream[:pos]), bytes(stream[:pos]) + b"\xff" + bytes(stream[pos + 1 :])):
        res = codecs.decompress(kind, damaged, 1 << 20)
        assert res is None or len(res.data) <= 1 << 20
