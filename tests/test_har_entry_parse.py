"""sources.har.parse_entry (msgspec where it answers) against the stdlib parse it replaces.

An entry's JSON text is parsed by msgspec unless msgspec refuses it (or it holds MAX_MSGSPEC_NESTING
brackets); then by `json` as before. That is safe only if msgspec, wherever it answers, answers
exactly what `json.loads(text.decode("utf-8", "surrogateescape"), parse_int=_parse_int)` does:
same types (an int is not a float), same float bits, same strings, same key order and duplicates.
Checked on every entry of every HAR in tests/data, on odd texts by hand, and on random documents
and random damage.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from phonehome.analysis.sources import har

DATA = Path(__file__).parent / "data"
HARS = sorted((DATA / "sources" / "har").rglob("*.har")) + sorted((DATA / "real").glob("*.har"))


def same(a, b) -> bool:
    """Equal and of the same types all the way down (1 == 1.0 and 0.0 == -0.0 are not enough);
    walked with a stack, as the documents may nest as deep as the parsers go."""
    pending = [(a, b)]
    while pending:
        a, b = pending.pop()
        if type(a) is not type(b):
            return False
        if isinstance(a, float):
            if math.copysign(1, a) != math.copysign(1, b) or not (a == b or (a != a and b != b)):
                return False
        elif isinstance(a, dict):
            if list(a) != list(b):
                return False
            pending.extend((a[k], b[k]) for k in a)
        elif isinstance(a, list):
            if len(a) != len(b):
                return False
            pending.extend(zip(a, b, strict=True))
        elif a != b:
            return False
    return True


def stdlib(text: bytes):
    try:
        return json.loads(text.decode("utf-8", errors="surrogateescape"), parse_int=har._parse_int)
    except (ValueError, RecursionError) as exc:
        return type(exc)


def msgspec_answer(text: bytes):
    try:
        return har._entry_decoder()(text)
    except Exception:
        return None


def check(text: bytes) -> bool:
    """parse_entry equals the stdlib parse (or fails as it does); True when msgspec answered."""
    expected = stdlib(text)
    try:
        got = har.parse_entry(text)
    except (ValueError, RecursionError) as exc:
        got = type(exc)
    if isinstance(expected, type):
        assert got is expected or issubclass(got, expected), text[:80]
    else:
        assert same(got, expected), text[:80]
    answer = msgspec_answer(text)
    if answer is not None:
        assert not isinstance(expected, type), f"the stdlib refuses {text[:80]!r}, msgspec answered"
        assert same(answer, expected), text[:80]
    return answer is not None


@pytest.mark.parametrize("path", HARS, ids=lambda p: p.name)
def test_every_entry_of_every_har(path):
    texts = har._split_entries(har._read(path))
    if texts is None:
        pytest.skip("parsed whole by the stdlib (not split)")
    answered = [check(bytes(text)) for text in texts]
    assert any(answered), "msgspec parses real entries"


ODD = [
    b"{}",
    b'{"a": 1, "a": 2}',
    b'{"a": 1, "b": 2, "a": 3}',
    b'{"n": [0, -0, 1, -1, 9007199254740993, 18446744073709551615, 18446744073709551616]}',
    b'{"n": -9223372036854775809}',
    *(b'{"n": %s}' % (b"7" * n) for n in (19, 20, 30, 38, 39, 40, 41, 60, 4300, 4301, 5000)),
    *(b'{"n": -%s}' % (b"9" * n) for n in (19, 20, 39, 40, 41)),
    b'{"f": [0.0, -0.0, 1.0, 1e5, 1E5, 1e-5, 0.1, 0.30000000000000004, 1.7976931348623157e308]}',
    b'{"f": [5e-324, 2.2250738585072011e-308, 2.2250738585072014e-308, 1.5e-400, -1.5e-400]}',
    b'{"f": 1e309}',
    b'{"f": -1e400}',
    b'{"f": 123456789012345678901234567890.5}',
    b'{"f": 0.1000000000000000055511151231257827021181583404541015625}',
    b'{"f": 9007199254740993.0}',
    b'{"f": 1' + b"0" * 400 + b".0}",
    b'{"f": 0.' + b"0" * 400 + b"1}",
    b'{"f": NaN}',
    b'{"f": Infinity}',
    b'{"f": -Infinity}',
    b'{"s": "\\ud800"}',
    b'{"s": "\\udc80"}',
    b'{"s": "\\ud83d\\ude00"}',
    b'{"s": "\\ud83d"}',
    b'{"s": "\\u0000\\"\\\\\\/\\b\\f\\n\\r\\t"}',
    b'{"s": "\xff"}',
    b'{"s": "\xed\xa0\x80"}',
    b'{"s": "\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x98\x80"}',
    b'{"s": "\x01"}',
    b'{"s": "\x7f"}',
    b'{"s": "a\tb"}',
    b'{"\xc3\xa9": 1}',
    b"[1, 2, ]",
    b"[1 2]",
    b'{"a": 1,}',
    b"",
    b"   ",
    b" {} ",
    b"{} x",
    b"01",
    b"-",
    b"1.",
    b".5",
    b"1e",
    b"+1",
    b"true",
    b"null",
    b"tru",
    b'"lone"',
    b"\xef\xbb\xbf{}",
    b"[" * 300 + b"]" * 300,
    b"[" * 990 + b"]" * 990,
    b"[" * 996 + b"]" * 996,
    b"[" * 1200 + b"]" * 1200,
    b'{"a":' * 995 + b"1" + b"}" * 995,
]


@pytest.mark.parametrize("text", ODD, ids=lambda t: repr(t[:40]))
def test_odd_texts(text):
    check(text)


def test_common_entries_are_parsed_by_msgspec():
    entry = {
        "startedDateTime": "2024-05-01T10:00:00.000Z",
        "time": 12.5,
        "request": {
            "method": "POST",
            "url": "https://t.example/c?x=1",
            "headers": [{"name": "A", "value": "é"}],
        },
        "response": {"status": 204, "content": {"size": 0}},
    }
    assert check(json.dumps(entry).encode())
    assert check(json.dumps(entry, ensure_ascii=False).encode())


def test_deep_texts_are_left_to_the_stdlib(monkeypatch):
    """msgspec goes a few levels deeper than `json` before RecursionError: a deep text is never
    given to it (counted by its brackets, strings included)."""
    calls = []
    decode = har._entry_decoder()
    monkeypatch.setattr(har, "_entry_decoder", lambda: lambda data: calls.append(data) or decode(data))
    deep = b"[" * har.MAX_MSGSPEC_NESTING + b"]" * har.MAX_MSGSPEC_NESTING
    assert same(har.parse_entry(deep), stdlib(deep)) and not calls
    shallow = b'{"s": "' + b"{" * (har.MAX_MSGSPEC_NESTING - 3) + b'", "l": []}'
    assert same(har.parse_entry(shallow), stdlib(shallow)) and calls


JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**45), max_value=10**45)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=4), children, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES, st.booleans())
def test_random_documents(value, ascii_only):
    check(json.dumps({"v": value}, ensure_ascii=ascii_only).encode("utf-8", errors="surrogatepass"))


NUMBER_PIECES = st.sampled_from(["0", "1", "5", "9", "-", "+", ".", "e", "E", "00", "999999999"])


@settings(max_examples=400, deadline=None)
@given(st.lists(NUMBER_PIECES, min_size=1, max_size=14))
def test_random_number_texts(pieces):
    check(b'{"n": ' + "".join(pieces).encode() + b"}")


@settings(max_examples=300, deadline=None)
@given(st.binary(min_size=1, max_size=4), st.integers(min_value=0, max_value=200))
def test_random_damage(noise, at):
    base = json.dumps(
        {
            "request": {"url": "https://a.example/?q=1", "headers": [{"name": "X", "value": "é\u2603"}]},
            "n": [1, 2.5],
        },
        ensure_ascii=False,
    ).encode()
    at = min(at, len(base))
    check(base[:at] + noise + base[at:])
    check(base[:at] + noise + base[at + len(noise) :])
