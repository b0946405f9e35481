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
    assert len([r for r in records if isinstance(r, HttpRecord)]) <= 19 + 2


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
