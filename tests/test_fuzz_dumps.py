"""Hostile and damaged mitmproxy dumps: the reader never crashes, hangs or loses readable flows.

Mutations of the real sample dump (truncations, flipped bytes, inserted and deleted runs) and of
the real third-party dumps. Any outcome is allowed except an exception other than CaptureError;
a CaptureError must be one line naming the file. Run with `-s` to see how many inputs were tried.
"""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from phonehome.analysis.records import HttpRecord, SourceReport
from tests.support_sources import read_damaged

SAMPLE_DUMP = Path(__file__).resolve().parent.parent / "captures" / "sample-mint-browser" / "flows.mitm"
TRIED = {"inputs": 0}


def _sample_http_flows() -> int:
    """HTTP flows in the intact sample: a resync must never invent more (the sample may grow)."""
    records, report = read_damaged(SAMPLE_DUMP)
    assert not report.damage
    return sum(isinstance(r, HttpRecord) for r in records)


SAMPLE_HTTP_FLOWS = _sample_http_flows()


def read_mutant(tmp_path: Path, data: bytes) -> tuple[list, SourceReport]:
    TRIED["inputs"] += 1
    path = tmp_path / "mutant.mitm"
    path.write_bytes(data)
    return read_damaged(path)


mutation = st.tuples(
    st.sampled_from(["truncate", "flip", "insert", "delete", "overwrite"]),
    st.floats(0, 1),
    st.binary(min_size=1, max_size=64),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(mutations=st.lists(mutation, min_size=1, max_size=4))
def test_mutated_sample_dump_never_crashes(tmp_path: Path, mutations):
    data = bytearray(SAMPLE_DUMP.read_bytes())
    for kind, where, blob in mutations:
        at = int(where * (len(data) - 1))
        if kind == "truncate":
            del data[at:]
        elif kind == "flip":
            data[at] ^= blob[0] or 0xFF
        elif kind == "insert":
            data[at:at] = blob
        elif kind == "delete":
            del data[at : at + len(blob)]
        else:
            data[at : at + len(blob)] = blob
        if not data:
            data = bytearray(b"0:~")
    records, _ = read_mutant(tmp_path, bytes(data))
    assert all(isinstance(r.flow_id, str) for r in records if isinstance(r, HttpRecord))
    assert len([r for r in records if isinstance(r, HttpRecord)]) <= SAMPLE_HTTP_FLOWS + 2


def test_every_single_truncation_point_keeps_the_complete_flows(tmp_path: Path):
    """Cut the dump at 200 evenly spread points: the flows wholly before the cut are always kept."""
    data = SAMPLE_DUMP.read_bytes()
    full, _ = read_mutant(tmp_path, data)
    ends = []
    import io

    from mitmproxy.io import tnetstring

    stream = io.BytesIO(data)
    while stream.tell() < len(data):
        tnetstring.load(stream)
        ends.append(stream.tell())
    for cut in sorted({int(len(data) * i / 200) for i in range(1, 200)}):
        records, _ = read_mutant(tmp_path, data[:cut])
        whole = sum(1 for end in ends if end <= cut)
        assert len(records) >= whole, (cut, len(records), whole)
        assert [r.timestamp for r in records][:whole] == [r.timestamp for r in full][:whole]


def test_random_bytes_are_a_clear_error(tmp_path: Path):
    rng = random.Random(7)
    for _ in range(50):
        size = rng.randint(1, 4096)
        data = bytes(rng.getrandbits(8) for _ in range(size))
        records, _ = read_mutant(tmp_path, data)
        assert records == [] or all(hasattr(r, "labels") for r in records)


@pytest.fixture(scope="module", autouse=True)
def _say_how_many():
    yield
    print(f"\nfuzzed dump reader with {TRIED['inputs']} inputs")


def _sample_record_starts() -> tuple[bytes, list[int], list[str]]:
    """The real sample dump, the byte offset where each of its records starts, and its flow ids."""
    import io

    from mitmproxy.io import tnetstring

    data = SAMPLE_DUMP.read_bytes()
    stream = io.BytesIO(data)
    starts, ids = [], []
    while stream.tell() < len(data):
        starts.append(stream.tell())
        ids.append(tnetstring.load(stream)["id"])
    return data, starts, ids


def _http_ids(records: list) -> list[str]:
    return [r.flow_id for r in records if isinstance(r, HttpRecord)]


@pytest.mark.parametrize("reader", ["fast", "mitmproxy"])
def test_bogus_length_over_the_limit_resyncs(tmp_path: Path, reader: str):
    """Issue 15: a record whose length prefix is damaged into a huge number (over the 512 MiB bound)
    loses only itself; the flows after it are read again."""
    from phonehome.analysis.records import Labels
    from phonehome.analysis.sources.fastdump import read_dump
    from tests.support_sources import reference_read_dump

    data, starts, record_ids = _sample_record_starts()
    full, _ = read_mutant(tmp_path, data)
    at = starts[3]
    digits = data[at : data.index(b":", at)]
    damaged = data[:at] + b"9" * 12 + data[at + len(digits) :]
    path = tmp_path / "bogus.mitm"
    path.write_bytes(damaged)
    report = SourceReport(str(path))
    read = read_dump if reader == "fast" else reference_read_dump
    records = list(read(path, Labels(session="fuzz"), report))
    assert _http_ids(records) == [i for i in _http_ids(full) if i != record_ids[3]]
    assert len(_http_ids(records)) == len(_http_ids(full)) - 1
    assert len(report.damage) == 1 and "frames no record" in report.damage[0]
    assert f"damaged record at byte {at}" in report.damage[0]


@pytest.mark.parametrize("reader", ["fast", "mitmproxy"])
def test_genuine_record_over_the_limit_is_skipped_alone(tmp_path: Path, reader: str, monkeypatch):
    """A record that really is over the bound (framed right) is skipped with a warning, the rest kept.
    The bound is lowered so that a record of the real sample is 'over' it."""
    from phonehome.analysis.records import Labels
    from phonehome.analysis.sources import framing
    from phonehome.analysis.sources.fastdump import read_dump
    from tests.support_sources import reference_read_dump

    data, starts, record_ids = _sample_record_starts()
    full, _ = read_mutant(tmp_path, data)
    lengths = [framing.parse_length(data[at : at + 13]) for at in starts]
    biggest = max(range(len(lengths)), key=lengths.__getitem__)
    monkeypatch.setattr(framing, "MAX_RECORD_BYTES", sorted(lengths)[-2])  # only the biggest is over
    path = tmp_path / "big.mitm"
    path.write_bytes(data)
    report = SourceReport(str(path))
    read = read_dump if reader == "fast" else reference_read_dump
    records = list(read(path, Labels(session="fuzz"), report))
    assert _http_ids(records) == [i for i in _http_ids(full) if i != record_ids[biggest]]
    assert len(_http_ids(records)) == len(_http_ids(full)) - 1
    assert len(report.damage) == 1 and "over the" in report.damage[0] and "skipped" in report.damage[0]


@pytest.mark.parametrize("junk", [b"Z9", b"Z12", b"xx7", b"40:"])
def test_resync_finds_a_record_right_after_a_digit(tmp_path: Path, junk: bytes):
    """Issue 15: junk ending in a digit just before a good record does not hide that record."""
    data, starts, _ = _sample_record_starts()
    full, _ = read_mutant(tmp_path, data)
    at = starts[5]
    records, report = read_mutant(tmp_path, data[:at] + junk + data[at:])
    assert _http_ids(records) == _http_ids(full)
    assert len(report.damage) == 1 and f"resumed at byte {at + len(junk)}" in report.damage[0]
