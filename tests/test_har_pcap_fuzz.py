"""Hostile and damaged HAR and pcap files: the readers never crash or hang and keep what they can.

Mutations of the real files under tests/data/sources (truncations, flipped bytes, inserted and
deleted runs) and random bytes, plus the saved corpus in tests/data/sources/corpus/. Any outcome
is allowed except an exception other than CaptureError; a CaptureError is one line naming the
file. Run with `-s` to see how many inputs were tried.
"""

from __future__ import annotations

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


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*")), ids=lambda p: p.name)
def test_saved_corpus(path: Path) -> None:
    read_mutant(path)


def test_zzz_report_count() -> None:
    print(f"\nHAR/pcap fuzz: {TRIED['inputs']} inputs tried")
    assert TRIED["inputs"] > 0
