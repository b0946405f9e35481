"""The walker's inlined fast paths do exactly what the general code they skip would do.

Issue 20, round four: the walker handles the commonest leaves without the calls the general path
makes (text() appends a plain leaf itself instead of calling emit(); structure() joins an
identifier key itself and hands numbers and booleans straight to emit(); bytes_strict() tests the
protobuf first byte with a set lookup). Each test here runs the fast path and the general path it
stands in for (emit, value, join_path, protobuf_looks_possible) on the same input and compares
everything the walker keeps: fields, the truncated mark and the notes.
"""

from __future__ import annotations

import base64
import enum
import gzip
import random

import msgpack
import pytest

from phonehome.analysis.decode import codecs
from phonehome.analysis.decode.model import DEFAULT_LIMITS, Limits
from phonehome.analysis.decode.walk import Stop, Walker, join_path


def _state(w: Walker) -> tuple:
    return (list(w.fields), w.result.truncated, list(w.result.notes), w.result.opaque_bytes)


def _run(limits: Limits, calls) -> tuple:
    """Apply each call to a fresh walker until Stop; the walker's state and where it stopped."""
    w = Walker(limits)
    done = 0
    try:
        for call in calls:
            call(w)
            done += 1
    except Stop:
        pass
    return (*_state(w), done)


PLAIN_LEAVES = [
    "",
    "a",
    "ab",
    "1234567",
    "12345678901234",
    "abc",
    "[",
    "x" * 7,
    "\u00e9\u00e9\u00e9",
    "\ud800",
]


@pytest.mark.parametrize(
    "limits",
    [
        DEFAULT_LIMITS,
        Limits(max_value_chars=3),
        Limits(max_fields=4),
        Limits(max_value_chars=0, max_fields=7),
    ],
)
def test_text_appends_a_plain_leaf_as_emit_would(limits):
    """Strings text() does not try to decode (short, digits) go to the field list inline, within
    max_fields and max_value_chars exactly as emit() keeps them (cut, marked, Stop)."""
    leaves = PLAIN_LEAVES * 3
    fast = _run(
        limits,
        [lambda w, s=s, i=i: w.text(s, "body", f"body.k{i}", "k", ("json",)) for i, s in enumerate(leaves)],
    )
    slow = _run(
        limits,
        [lambda w, s=s, i=i: w.emit("body", f"body.k{i}", "k", ("json",), s) for i, s in enumerate(leaves)],
    )
    assert fast == slow
    assert fast[0], "something was kept"


class Colour(enum.IntEnum):
    RED = 1


class MyStr(str):
    pass


VALUES = [
    0,
    -7,
    2**70,
    True,
    False,
    1.5,
    -0.0,
    float("nan"),
    float("inf"),
    1e300,
    Colour.RED,
    None,
    MyStr("sub"),
    b"\x00\x01binary-bytes-here",
    "plain",
    "https://example.com/x?a=1",
    {"inner": [1, "two", {"three": 3.0}], "x.y": None},
    [[], {}, ["deep", [True]]],
    (1, "tuple"),
]


@pytest.mark.parametrize(
    "limits", [DEFAULT_LIMITS, Limits(max_value_chars=2), Limits(max_fields=3), Limits(max_nesting=2)]
)
def test_structure_gives_each_value_what_value_gives_it(limits):
    """structure() sends str, int, float and bool values past value() (the rest goes through it):
    the fields, marks and notes are those value() makes of each value, at the path join_path gives
    (dicts) or `[i]` (lists), also where max_nesting cuts a nested container."""
    keys = ["id", "$model", "a.b", "", "x y", "\u00e9t\u00e9", "k1", "_k", "1a"]
    rng = random.Random(20)
    obj = {rng.choice(keys) + str(i): v for i, v in enumerate(VALUES)}
    fast = _run(limits, [lambda w: w.structure(obj, "body", "body", "", ("json",), 0)])
    slow = _run(
        limits,
        [
            lambda w, k=k, v=v: w.value(v, "body", join_path("body", k), k, ("json",), 1)
            for k, v in obj.items()
        ],
    )
    assert fast[:4] == slow[:4]
    fast = _run(limits, [lambda w: w.structure(VALUES, "body", "body.list", "list", ("json",), 0)])
    slow = _run(
        limits,
        [
            lambda w, i=i, v=v: w.value(v, "body", f"body.list[{i}]", "list", ("json",), 1)
            for i, v in enumerate(VALUES)
        ],
    )
    assert fast[:4] == slow[:4]


def test_structure_joins_identifier_keys_as_join_path_does():
    rng = random.Random(7)
    alphabet = 'ab_1.[]" \u00e9$-'
    keys = {"".join(rng.choices(alphabet, k=rng.randint(0, 6))) for _ in range(3000)}
    obj = {k: "v" for k in keys}
    w = Walker(DEFAULT_LIMITS)
    w.structure(obj, "body", "body", "", (), 0)
    assert [f.path for f in w.fields] == [join_path("body", k) for k in obj]


def test_the_protobuf_first_byte_set_is_protobuf_looks_possible():
    """bytes_strict asks `first in PROTOBUF_FIRST_BYTES and len >= 2` instead of calling
    protobuf_looks_possible: the same answer for every first byte and length, and the same
    first-tag rule as before (field number not 0, wire type 0, 1, 2 or 5)."""
    for first in range(256):
        for length in range(4):
            data = bytes([first]) + b"\x01" * max(0, length - 1) if length else b""
            expected = len(data) >= 2 and data[0] >> 3 != 0 and (data[0] & 7) in (0, 1, 2, 5)
            assert codecs.protobuf_looks_possible(data) == expected, (first, length)
            inline = bool(data) and data[0] in codecs.PROTOBUF_FIRST_BYTES and len(data) >= 2
            assert inline == expected, (first, length)


def test_plausible_text_refuses_every_buffer_starting_with_a_not_text_first_byte():
    """bytes_strict skips plausible_text when the first byte is in NOT_TEXT_FIRST_BYTES: for each
    such byte plausible_text refuses every buffer tried (random tails, valid UTF-8 tails, text
    tails), and for each other byte some buffer starting with it is text (the set is no wider
    than it must be)."""
    rng = random.Random(42)
    words = "hello world caf\u00e9 \u65e5\u672c\u8a9e r\u00e9sum\u00e9 ok 123 a=b&c=d".encode()
    for first in range(256):
        head = bytes([first])
        tails = [rng.randbytes(rng.randint(3, 40)) for _ in range(150)]
        tails += [words[i:] for i in range(0, len(words), 3)]
        tails += [b"\x80abcdefgh", b"\xbf\xbfabcdefgh", b"\x80\x80abcdefgh", b"\x80\x80\x80abcdefgh"]
        tails += [b"\xa9 text that reads well", b"\xa4\x85 text that reads well", b"abc\xef\xbf\xbd"]
        tails += [b"\x95\x9c text that reads well", b"\x9f\x98\x80 text that reads well"]
        tails += [b"\xa0\x84\x80 text that reads well"]
        texts = [codecs.plausible_text(head + tail) for tail in tails]
        if first in codecs.NOT_TEXT_FIRST_BYTES:
            assert texts == [None] * len(texts), hex(first)
        elif first not in (0xEE, 0xF1, 0xF2, 0xF4):  # only private-use or unassigned characters
            assert any(t is not None for t in texts), hex(first)  # start so (Unicode may assign some)


def test_msgpack_may_convince_is_false_only_where_unpacking_never_convinces():
    """The walker unpacks a msgpack map only if msgpack_may_convince: on random buffers starting
    with every map byte, and on packed maps with every kind of first key, a convincing result
    always had msgpack_may_convince true; and it is true for real str-keyed maps."""
    rng = random.Random(5)
    map_starts = [*range(0x81, 0x90), 0xDE, 0xDF]
    samples = [bytes([rng.choice(map_starts)]) + rng.randbytes(rng.randint(0, 30)) for _ in range(60_000)]
    # maps whose first key starts with each possible byte: random tails after a fixed head
    samples += [bytes([m, k]) + rng.randbytes(rng.randint(0, 8)) for m in (0x81, 0x82) for k in range(256)]
    keys = ["k", "a" * 40, "b" * 300, "x" * 70_000, b"bytes", 7, -1, 1.5, None, True, (1, 2), "\u00e9"]
    for first_key in keys:
        for n in (1, 2, 20, 70_000):
            obj = {first_key: 1, **{f"k{i}": i for i in range(n - 1)}}
            samples.append(msgpack.packb(obj, use_bin_type=True))
    values = [0, -5, 2**40, 1.5, "text", b"raw", None, True, [1, "a"], {"in": 1}]
    for _ in range(3_000):  # real maps, whole, cut short, or with a byte changed
        obj = {
            "".join(rng.choices("abc\u00e9", k=rng.randint(0, 40))): rng.choice(values)
            for _ in range(rng.randint(1, 20))
        }
        data = msgpack.packb(obj, use_bin_type=True)
        samples += [data, data[: rng.randint(1, len(data))]]
        i = rng.randrange(len(data))
        samples.append(data[:i] + bytes([rng.randrange(256)]) + data[i + 1 :])
    convincing = 0
    for data in samples:
        if codecs.msgpack_is_convincing(codecs.parse_msgpack(data)):
            convincing += 1
            assert codecs.msgpack_may_convince(data), data[:16].hex()
    assert convincing > 3_000
    assert codecs.msgpack_may_convince(msgpack.packb({"a": 1, 2: 3}))  # only the first key is checked
    assert not codecs.msgpack_may_convince(msgpack.packb({}))
    assert not codecs.msgpack_may_convince(msgpack.packb({b"a": 1}, use_bin_type=True))
    assert not codecs.msgpack_may_convince(b"")


def _pb_string(field: int, text: str) -> bytes:
    data = text.encode()
    return bytes([field << 3 | 2, len(data)]) + data


@pytest.mark.parametrize(
    ("raw", "inner"),
    [
        (gzip.compress(b'{"k": "gzip inside"}'), ("gzip", "json")),
        (b'{"k": "json inside"}', ("json",)),
        (b"plain words in a value", ()),
        (msgpack.packb({"k": "msgpack inside"}), ("msgpack",)),
        (_pb_string(1, "protobuf inside") + _pb_string(2, "more text"), ("protobuf",)),
    ],
)
def test_bytes_strict_appends_its_layer_once_on_every_way_it_succeeds(raw, inner):
    """bytes_strict takes the layer (hex, base64) apart from the chain and adds it only when it
    finds something: every way it succeeds gives the chain outer > layer > inner, and a bytes
    value met inside a structure (layer "") gets no empty layer."""
    for text, layer in ((raw.hex(), "hex"), (base64.b64encode(raw).decode(), "base64")):
        w = Walker(DEFAULT_LIMITS)
        w.text(text, "query", "query.v", "v", ("form",))
        assert w.fields and {f.encodings for f in w.fields} == {("form", layer, *inner)}, (text, layer)
    w = Walker(DEFAULT_LIMITS)
    w.value(raw, "body", "body.b", "b", ("msgpack",), 0)
    assert w.fields and {f.encodings for f in w.fields} == {("msgpack", *inner)}


def test_plausible_text_refuses_a_utf8_lead_byte_without_a_continuation_byte_after_it():
    """bytes_strict skips plausible_text when a lead byte C2-F4 is not followed by 80-BF (or by
    nothing): for every such pair, with random and text tails, plausible_text refuses."""
    rng = random.Random(11)
    tails = [b"", b"a", b"abcdefgh text that reads well", b"\xef\xbf\xbd well"]
    for lead in range(0xC2, 0xF5):
        assert codecs.plausible_text(bytes([lead])) is None
        for second in [*range(0x00, 0x80), *range(0xC0, 0x100)]:
            for tail in [*tails, rng.randbytes(rng.randint(2, 20))]:
                assert codecs.plausible_text(bytes([lead, second]) + tail) is None, (
                    hex(lead),
                    hex(second),
                    tail,
                )
    assert codecs.plausible_text("caf\u00e9 \u00e9t\u00e9".encode()[3:]) is not None  # C3 A9: a real lead
