"""Hostile and damaged HAR and pcap files: the readers never crash or hang and keep what they can.

Mutations of the real files under tests/data/sources (truncations, flipped bytes, inserted and
deleted runs) and random bytes, plus the saved corpus in tests/data/sources/corpus/. Any outcome
is allowed except an exception other than CaptureError; a CaptureError is one line naming the
file. Run with `-s` to see how many inputs were tried.
"""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phonehome.analysis.records import SourceReport
from tests.support_sources import DATA, HAR, PCAP, read_damaged

SEEDS = {
    ".har": [HAR / "tweasel" / "android_first-run.har", HAR / "mitmproxy_repo" / "firefox.har"],
    ".pcap": [
        PCAP / "scapy" / "http_content_length.pcap",
        PCAP / "tcpdump_tests" / "dns_udp.pcap",
        PCAP / "illustrated_tls13" / "capture.pcap",
    ],
}
CORPUS = DATA / "corpus"
TRIED = {"inputs": 0}


def read_mutant(path: Path) -> tuple[list, SourceReport]:
    TRIED["inputs"] += 1
    return read_damaged(path)


def mutate(data: bytes, rnd: random.Random) -> bytes:
    buf = bytearray(data)
    for _ in range(rnd.randint(1, 4)):
        op = rnd.randrange(4)
        pos = rnd.randrange(len(buf) or 1)
        if op == 0:
            buf = buf[:pos]
        elif op == 1 and buf:
            buf[pos] ^= 1 << rnd.randrange(8)
        elif op == 2:
            buf[pos:pos] = rnd.randbytes(rnd.randint(1, 64))
        else:
            del buf[pos : pos + rnd.randint(1, 64)]
    return bytes(buf)


@pytest.mark.parametrize("suffix", sorted(SEEDS))
@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2**32 - 1))
def test_mutated_real_files(tmp_path: Path, suffix: str, seed: int) -> None:
    rnd = random.Random(seed)
    source = rnd.choice(SEEDS[suffix])
    path = tmp_path / f"mutant{suffix}"
    path.write_bytes(mutate(source.read_bytes(), rnd))
    records, report = read_mutant(path)
    assert report.records == len(records)


@pytest.mark.parametrize("suffix", sorted(SEEDS))
def test_truncations_keep_the_prefix(tmp_path: Path, suffix: str) -> None:
    for source in SEEDS[suffix]:
        data = source.read_bytes()
        full, _ = read_mutant(source)
        for cut in range(0, len(data), max(1, len(data) // 25)):
            path = tmp_path / f"cut{suffix}"
            path.write_bytes(data[:cut])
            records, _ = read_mutant(path)
            assert len(records) <= len(full)
        if suffix == ".pcap":  # a pcap cut in its last packet keeps the packets before
            path.write_bytes(data[:-3])
            records, _ = read_mutant(path)
            assert len(records) >= len(full) - 1


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=2048), suffix=st.sampled_from([".har", ".pcap", ".pcapng"]))
def test_random_bytes(tmp_path: Path, data: bytes, suffix: str) -> None:
    path = tmp_path / f"random{suffix}"
    path.write_bytes(data)
    read_mutant(path)


# any JSON type where HAR expects a string, a number, a list or an object (issue 15)
_LEAF = st.one_of(
    st.none(), st.booleans(), st.integers(-(10**30), 10**30), st.floats(allow_nan=False), st.text(max_size=20)
)
_ANY = st.recursive(
    _LEAF,
    lambda ch: st.one_of(st.lists(ch, max_size=3), st.dictionaries(st.text(max_size=8), ch, max_size=3)),
    max_leaves=8,
)


def _maybe(s):
    return st.one_of(s, _ANY)


_HEADER = st.fixed_dictionaries({"name": _maybe(st.text(max_size=10)), "value": _maybe(st.text(max_size=10))})
_ENTRY = st.fixed_dictionaries(
    {
        "startedDateTime": _maybe(st.just("2024-01-01T00:00:00Z")),
        "time": _maybe(st.floats(0, 10)),
        "request": _maybe(
            st.fixed_dictionaries(
                {
                    "method": _maybe(st.sampled_from(["GET", "POST"])),
                    "url": _maybe(st.just("https://a.example/x?y=1")),
                    "httpVersion": _maybe(st.just("HTTP/1.1")),
                    "headers": _maybe(st.lists(_HEADER, max_size=3)),
                    "postData": _maybe(
                        st.fixed_dictionaries(
                            {
                                "text": _maybe(st.text(max_size=20)),
                                "encoding": _maybe(st.just("base64")),
                                "params": _maybe(st.lists(_HEADER, max_size=2)),
                            }
                        )
                    ),
                }
            )
        ),
        "response": _maybe(
            st.fixed_dictionaries(
                {
                    "status": _maybe(st.integers(0, 999)),
                    "headers": _maybe(st.lists(_HEADER, max_size=2)),
                    "content": _maybe(st.fixed_dictionaries({"text": _maybe(st.text(max_size=10))})),
                }
            )
        ),
        "_phonehome": _maybe(st.fixed_dictionaries({"app": _ANY, "mode": _ANY})),
    }
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(entries=st.lists(_ENTRY, max_size=3))
def test_har_fields_of_any_json_type(tmp_path: Path, entries: list) -> None:
    path = tmp_path / "types.har"
    path.write_text(json.dumps({"log": {"entries": entries}}))
    records, report = read_mutant(path)
    assert report.records == len(records) <= len(entries)


def test_integers_beyond_python_s_digit_limit(tmp_path: Path) -> None:
    huge = "9" * 5000
    text = (
        '{"log": {"entries": [{"startedDateTime": "2024-01-01T00:00:00Z", "time": ' + huge + ", "
        '"request": {"method": "GET", "url": "https://a.example/?n=1", "headers": []}, '
        '"response": {"status": ' + huge + ', "headers": [], "content": {}}}]}}'
    )
    path = tmp_path / "huge.har"
    path.write_text(text)
    records, report = read_mutant(path)
    assert len(records) == 1 and records[0].status is None and report.damage == []


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*")), ids=lambda p: p.name)
def test_saved_corpus(path: Path) -> None:
    read_mutant(path)


def test_zzz_report_count() -> None:
    print(f"\nHAR/pcap fuzz: {TRIED['inputs']} inputs tried")
    assert TRIED["inputs"] > 0
