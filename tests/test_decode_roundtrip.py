"""Property tests: encode -> decode recovers a planted value, with the exact chain, through every
supported layer combination up to four layers deep; plain text is never reinterpreted."""

from __future__ import annotations

from urllib.parse import quote

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phonehome.analysis.decode import decode_request
from tests.support_decode import (
    BINARY_STRUCT_LAYERS,
    COMPRESSORS,
    CONTENT_ENCODERS,
    TEXT_LAYERS,
    TEXTIFIERS,
    record,
)

SETTINGS = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])

planted = st.builds(
    lambda tail, words: f"https://planted.example/{tail}?q={quote(words)}",
    st.text("abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=20),
    st.text(st.characters(codec="utf-8", categories=["L", "N", "Zs"]), min_size=1, max_size=20),
)


@st.composite
def chains(draw):
    """A planted value wrapped in 0-4 layers; returns (payload, is_bytes, chain outermost-first)."""
    value = draw(planted)
    payload: str | bytes = value
    chain: list[str] = []
    for _ in range(draw(st.integers(0, 4))):
        if isinstance(payload, str):
            options = [*TEXT_LAYERS, *BINARY_STRUCT_LAYERS, *COMPRESSORS, *TEXTIFIERS]
        else:
            options = [*COMPRESSORS, *TEXTIFIERS]
        if chain[:1] == ["hex"]:  # hex of hex is all digits: indistinguishable from a number
            options.remove("hex")
        name = draw(st.sampled_from(options))
        if name in TEXT_LAYERS:
            payload = TEXT_LAYERS[name](payload)
            chain[:0] = ["jwt", "json"] if name == "jwt" else [name]
        elif name in BINARY_STRUCT_LAYERS:
            payload = BINARY_STRUCT_LAYERS[name](payload)
            chain.insert(0, name)
        else:
            data = payload.encode() if isinstance(payload, str) else payload
            if name in COMPRESSORS:
                payload = COMPRESSORS[name](data)
                chain.insert(0, name)
            else:
                payload = TEXTIFIERS[name](data)
                # URL-safe base64 without '-' or '_' cannot be told from standard base64
                if name == "base64url" and "-" not in payload and "_" not in payload:
                    name = "base64"
                chain.insert(0, name)
    return value, payload, tuple(chain)


@SETTINGS
@given(chains())
def test_planted_value_round_trips_in_query_or_body(case):
    value, payload, chain = case
    if isinstance(payload, str):
        rec = record("/c?x=" + quote(payload, safe=""))
    else:
        rec = record("/c", body=payload)
    fields = decode_request(rec).fields
    hits = [f for f in fields if f.value == value]
    assert hits, (chain, [(f.path, f.encodings, f.value[:60]) for f in fields])
    assert any(f.encodings == chain for f in hits), (chain, [f.encodings for f in hits])


@SETTINGS
@given(chains(), st.sampled_from(sorted(CONTENT_ENCODERS)))
def test_planted_value_round_trips_under_content_encoding(case, coding):
    value, payload, chain = case
    name, compress = CONTENT_ENCODERS[coding]
    data = payload.encode() if isinstance(payload, str) else payload
    rec = record("/c", headers={"Content-Encoding": coding}, body=compress(data))
    fields = decode_request(rec).fields
    hits = [f for f in fields if f.value == value]
    assert hits, (coding, chain, [(f.path, f.encodings, f.value[:60]) for f in fields])
    # a text payload as a whole body is read as the body's text; the chain starts with the coding
    assert any(f.encodings[:1] == (name,) and f.encodings[1:] == chain for f in hits), (
        coding,
        chain,
        [f.encodings for f in hits],
    )


words = st.text(
    st.characters(codec="utf-8", categories=["L", "N"]) | st.sampled_from(" -_.:/"), min_size=0, max_size=40
)


@settings(max_examples=500, deadline=None)
@given(words)
def test_short_or_worded_plain_text_is_not_reinterpreted(text):
    """Values a human would type (letters, digits, spaces, a few separators) stay as they are
    unless long and exactly base64/hex of text — then they must decode to readable text."""
    fields = decode_request(record("/c?x=" + quote(text, safe=""))).fields
    query = [f for f in fields if f.location == "query"]
    assert len(query) == 1
    f = query[0]
    if f.encodings:
        assert set(f.encodings) <= {"base64", "base64url", "hex"}
        assert len(text) >= 8
        assert f.value.isprintable()
    else:
        assert f.value == text
