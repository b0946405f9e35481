"""Each cheap pre-check in front of a decoder agrees with the decoder it stands in front of.

A pre-check may only turn away what the decoder itself would refuse: the reference in every test
is the decoder (blackboxprotobuf, binascii, the UTF-8 codec...) called directly, on hand-built
values, on random bytes and on values from real captures.
"""

from __future__ import annotations

import random

import pytest

from phonehome.analysis.protobuf_wire import framing_ok
from tests.support_decode import varint


def parser_accepts(data: bytes) -> bool:
    """blackboxprotobuf as codecs.parse_protobuf uses it, without the framing check in front."""
    import blackboxprotobuf

    try:
        message, _typedef = blackboxprotobuf.decode_message(data)
    except Exception:
        return False
    return isinstance(message, dict) and bool(message)


def _random_field(rng: random.Random, wire_type: int) -> bytes:
    tag = varint(rng.randint(1, 2000) << 3 | wire_type)
    if wire_type == 0:
        return tag + varint(rng.getrandbits(rng.choice((6, 20, 63))))
    if wire_type == 1:
        return tag + rng.randbytes(8)
    if wire_type == 5:
        return tag + rng.randbytes(4)
    if wire_type == 2:
        payload = rng.randbytes(rng.choice((0, 3, 130, 300)))
        return tag + varint(len(payload)) + payload
    return tag  # a group start/end: nothing follows the tag itself


@pytest.mark.parametrize("group", [3, 4])
def test_the_parser_refuses_every_top_level_group_and_so_does_framing_ok(group):
    rng = random.Random(group)
    for _ in range(300):
        fields = [_random_field(rng, rng.choice((0, 1, 2, 5))) for _ in range(rng.randint(0, 4))]
        fields.insert(rng.randint(0, len(fields)), _random_field(rng, group))
        data = b"".join(fields)
        assert not parser_accepts(data), data.hex()
        assert not framing_ok(data), data.hex()


def test_framing_ok_accepts_well_framed_messages_with_long_varints():
    rng = random.Random(7)
    for _ in range(500):
        data = b"".join(_random_field(rng, rng.choice((0, 1, 2, 5))) for _ in range(rng.randint(1, 5)))
        assert framing_ok(data), data.hex()
        assert not framing_ok(data[:-1]), "the last field cut short"


def test_framing_ok_never_rejects_what_the_parser_accepts_on_short_noise():
    rng = random.Random(20)
    accepted = 0
    for _ in range(30_000):
        data = rng.randbytes(rng.randint(1, 24))
        if parser_accepts(data):
            accepted += 1
            assert framing_ok(data), data.hex()
    assert accepted > 300


def test_join_paths_cheap_tests_only_pass_keys_the_bare_key_pattern_passes():
    """join_path tries str.isidentifier and str.isalnum before its regex: every character either
    accepts must be one the regex's class accepts, over all of Unicode."""
    from phonehome.analysis.decode.walk import _BARE_KEY

    for code in range(0x110000):
        c = chr(code)
        if c.isalnum() or ("a" + c).isidentifier():
            assert _BARE_KEY.fullmatch(c), hex(code)
    assert not "".isidentifier() and not "".isalnum()


def test_plausible_text_decodes_exactly_what_the_strict_utf8_codec_decodes():
    """plausible_text decodes with errors="replace" first (no exception on random bytes): its
    answer must be the strict codec's text, and U+FFFD that is really in the text is still text."""
    from phonehome.analysis.decode.codecs import plausible_text

    rng = random.Random(8)
    samples = [rng.randbytes(rng.randint(4, 40)) for _ in range(20_000)]
    words = ["caf\u00e9", "na\u00efve", "\u65e5\u672c\u8a9e", "\ufffd", "r\u00e9sum\u00e9", "ok"]
    samples += [" ".join(rng.choices(words, k=rng.randint(2, 8))).encode() for _ in range(2_000)]
    samples += [s.encode() + b"\xff" for s in words]  # U+FFFD in the text and invalid bytes as well
    samples += [b"\xff" + "caf\u00e9 au lait \ufffd".encode(), "\ufffd\ufffd\ufffd r\u00e9sum\u00e9".encode()]
    texts = 0
    for data in samples:
        try:
            strict = data.decode("utf-8")
        except UnicodeDecodeError:
            strict = None
        text = plausible_text(data)
        if strict is None:
            assert text is None, data
        else:
            assert text is None or text == strict, data
            texts += text is not None
            if "\ufffd" in strict:  # judged like any other printable non-alphanumeric symbol
                bullet = strict.replace("\ufffd", "\u2022").encode()
                assert (text is None) == (plausible_text(bullet) is None), data
    kept = "caf\u00e9 au lait \ufffd s'il vous pla\u00eet"
    assert plausible_text(kept.encode()) == kept
    assert texts > 1_000


def test_sniff_compression_names_nothing_for_a_first_byte_outside_the_set():
    """The walker asks sniff_compression only when the first byte is in COMPRESSION_FIRST_BYTES:
    every pair of first bytes (with the rest of each magic after them) agrees."""
    from phonehome.analysis.decode.codecs import COMPRESSION_FIRST_BYTES, sniff_compression

    named = set()
    for first in range(256):
        for second in range(256):
            for rest in (b"", b"\x2f\xfd", b"\x08\x00\x00\x00"):
                kind = sniff_compression(bytes([first, second]) + rest)
                if kind is not None:
                    named.add(kind)
                    assert first in COMPRESSION_FIRST_BYTES, (first, second, rest)
    assert named == {"gzip", "zstd", "zlib"}


def test_the_walkers_json_decoder_gives_what_json_loads_gives():
    """walk._json keeps one JSONDecoder instead of json.loads(text, parse_int=...) per call: the
    same objects, and None exactly where json.loads raises (a BOM, huge integers kept as text)."""
    import json

    from phonehome.analysis.decode.walk import _int_or_text, _json

    texts = [
        '{"a": [1, 2.5, "x", null, true]}',
        "\ufeff{}",
        '  {"n": -12}  ',
        '{"big": ' + "9" * 5000 + "}",
        "[1, 2",
        '"just a string"',
        "{} {}",
        "[" * 100_000 + "]" * 100_000,
        "Infinity",
        "",
    ]
    for text in texts:
        try:
            expected = json.loads(text, parse_int=_int_or_text)
        except (ValueError, RecursionError):
            expected = None
        assert _json(text) == expected, text[:40]
    assert _json('{"big": ' + "9" * 5000 + "}") == {"big": "9" * 5000}
