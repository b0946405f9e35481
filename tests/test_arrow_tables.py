"""The tables `phonehome analyze` builds without pandas equal the ones pandas built before.

build_analysis turns rows into Arrow tables (analysis.arrow_tables) and writes them; the
reference here is the code it replaced, kept verbatim: row tuples into DataFrames, persistence
marked on the DataFrame, `pa.Table.from_pandas` / `DataFrame.to_parquet` to write. On the sample
capture, every real capture in tests/data/real, all of them in one run (persistence across
sessions), inputs with empty tables and contacts with and without a server IP, the written
files must be the same bytes and the DataFrames `Analysis` gives must equal the reference frames.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from phonehome.analysis import arrow_tables, pipeline, sharing
from phonehome.analysis.arrow_tables import unpack_findings
from phonehome.analysis.classify.persistence import LINKING_PREFIXES, _linking_value
from phonehome.analysis.cli.options import may_warn_about_inputs
from phonehome.analysis.findings import CONTACTS_COLUMNS, FINDINGS_COLUMNS, FLOWS_COLUMNS, findings_from_rows
from phonehome.analysis.profile import Profile
from phonehome.analysis.rows import Rows
from phonehome.analysis.verdicts.inputs import input_warnings

DATA = Path(__file__).resolve().parent / "data"
REAL = sorted(p for p in (DATA / "real").iterdir() if p.suffix in (".har", ".mitm"))
FILES = ("findings.csv", "findings.parquet", "flows.parquet", "contacts.parquet")


# --- the reference: the pandas path as it was (pipeline.build_analysis / write_tables at 7ba390a) ---


def reference_mark_persistence(findings: pd.DataFrame) -> pd.DataFrame:
    if findings.empty:
        return findings
    findings = findings.copy()
    data_types = findings["data_type"]
    typed = data_types.isin([t for t in data_types.unique() if t.startswith(LINKING_PREFIXES)])
    values = findings["value"]
    candidate = typed & values.isin([v for v in values[typed].unique() if _linking_value(v)])
    if not candidate.any():
        return findings
    scope = findings.loc[candidate, "session"] + "\x00" + findings.loc[candidate, "mode"]
    spread = scope.groupby(values[candidate]).nunique()
    recurring = set(spread[spread >= 2].index)
    hit = candidate & values.isin(recurring)
    if not hit.any():
        return findings
    evidence = findings.loc[hit, "evidence"]
    marked = {e: e if "persistence" in e.split("+") else f"{e}+persistence" for e in evidence.unique()}
    findings.loc[hit, "evidence"] = evidence.map(marked)
    findings.loc[hit & (findings["confidence"] == "low"), "confidence"] = "medium"
    return findings


def reference_frames(rows: Rows) -> dict[str, pd.DataFrame]:
    findings = reference_mark_persistence(findings_from_rows(rows.findings))
    flows = pd.DataFrame.from_records(rows.flows, columns=list(FLOWS_COLUMNS))
    flows = flows.astype(
        {"status": "Int64", "request_size": "int64", "response_size": "Int64", "fields": "int64"}
    )
    flows["decode_truncated"] = flows["decode_truncated"].astype(bool)
    flows["timestamp"] = flows["timestamp"].astype("float64")
    contacts = pd.DataFrame.from_records(rows.contacts, columns=list(CONTACTS_COLUMNS))
    contacts["timestamp"] = contacts["timestamp"].astype("float64")
    return {"findings": findings, "flows": flows, "contacts": contacts}


def reference_write(frames: dict[str, pd.DataFrame], out: Path) -> None:
    out.mkdir()
    findings = pa.Table.from_pandas(frames["findings"], preserve_index=False)
    sharing.write_csv(findings, out / "findings.csv")
    pq.write_table(findings, out / "findings.parquet")
    frames["flows"].to_parquet(out / "flows.parquet", index=False)
    frames["contacts"].to_parquet(out / "contacts.parquet", index=False)


# --- the inputs ---


def _empty_har(tmp: Path) -> list[Path]:
    har = tmp / "empty.har"
    har.write_text(
        json.dumps({"log": {"version": "1.2", "creator": {"name": "x", "version": "1"}, "entries": []}})
    )
    return [har]


def _dns_pcap(tmp: Path) -> list[Path]:
    """Contacts only (no flows, no findings), one with a server IP."""
    from scapy.layers.dns import DNS, DNSQR, DNSRR
    from scapy.layers.inet import IP, UDP
    from scapy.utils import wrpcap

    query = (
        IP(src="10.0.0.2", dst="10.0.0.1")
        / UDP(sport=5353, dport=53)
        / DNS(rd=1, qd=DNSQR(qname="a.example"))
    )
    answer = (
        IP(src="10.0.0.1", dst="10.0.0.2")
        / UDP(sport=53, dport=5353)
        / DNS(qr=1, qd=DNSQR(qname="b.example"), an=DNSRR(rrname="b.example", rdata="93.184.216.34"))
    )
    query.time, answer.time = 1_700_000_000.0, 1_700_000_001.0
    pcap = tmp / "dns.pcap"
    wrpcap(str(pcap), [query, answer])
    return [pcap]


def _given(path: Path):
    return lambda tmp, sample: [path]


CASES = {
    "sample": lambda tmp, sample: [sample],
    **{f"real-{p.stem}": _given(p) for p in REAL},
    "all-together": lambda tmp, sample: [sample, *REAL],
    "empty-har": lambda tmp, sample: _empty_har(tmp),
    "dns-pcap": lambda tmp, sample: _dns_pcap(tmp),
    "empty-har-and-sample": lambda tmp, sample: [*_empty_har(tmp), sample],
}


def analysed(
    paths: list[Path], monkeypatch, profile: Profile | None = None
) -> tuple[pipeline.Analysis, Rows]:
    """analyze() as `phonehome analyze` calls it, and a copy of the rows its tables were built from."""
    seen: list[Rows] = []
    build = pipeline.build_analysis

    def spy(rows, reports, profile):  # a copy, leaving packed findings packed for the build
        findings = unpack_findings(rows.packed_findings) + list(rows._findings)
        seen.append(Rows(list(rows.flows), findings, list(rows.contacts)))
        return build(rows, reports, profile)

    monkeypatch.setattr(pipeline, "build_analysis", spy)
    result = pipeline.analyze(paths, profile=profile)
    monkeypatch.undo()
    assert len(seen) == 1
    return result, seen[0]


@pytest.mark.parametrize("case", list(CASES))
def test_written_tables_and_frames_equal_the_pandas_path(case, tmp_path, monkeypatch, sample_capture):
    paths = CASES[case](tmp_path, sample_capture)
    result, rows = analysed(paths, monkeypatch)
    expected = reference_frames(rows)
    reference_write(expected, tmp_path / "reference")
    written = pipeline.write_tables(result, tmp_path / "arrow")  # from the Arrow tables: no frame built yet
    assert [p.name for p in written] == list(FILES)
    for name in FILES:
        assert (tmp_path / "arrow" / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(getattr(result, name), frame, check_exact=True)
    # and written again from the frames (what --redact does): the same files
    pipeline.write_tables(result, tmp_path / "frames")
    for name in FILES:
        assert (tmp_path / "frames" / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name


@pytest.mark.parametrize("case", ["sample", "all-together"])
def test_findings_in_many_chunks_give_the_same_tables(case, tmp_path, monkeypatch, sample_capture):
    """A big findings table is built and written in dictionary-encoded chunks (here of 7 rows):
    the same CSV bytes, the same Parquet table (schema, metadata, values; in several row groups)
    and the same DataFrame."""

    monkeypatch.setattr(arrow_tables, "CHUNK_ROWS", 7)
    result, rows = analysed(CASES[case](tmp_path, sample_capture), monkeypatch)
    monkeypatch.setattr(arrow_tables, "CHUNK_ROWS", 7)  # analysed() undid it
    assert len(rows.findings) > 2 * 7
    assert result.table("findings").column("value").num_chunks > 2
    assert pa.types.is_dictionary(result.table("findings").schema.field("value").type)
    expected = reference_frames(rows)
    reference_write(expected, tmp_path / "reference")
    pipeline.write_tables(result, tmp_path / "arrow")
    assert (tmp_path / "arrow" / "findings.csv").read_bytes() == (
        tmp_path / "reference" / "findings.csv"
    ).read_bytes()
    written = pq.ParquetFile(tmp_path / "arrow" / "findings.parquet")
    assert written.metadata.num_row_groups > 2
    reference = pq.read_table(tmp_path / "reference" / "findings.parquet")
    assert written.read().equals(reference, check_metadata=True)
    pd.testing.assert_frame_equal(
        pd.read_parquet(tmp_path / "arrow" / "findings.parquet"),
        pd.read_parquet(tmp_path / "reference" / "findings.parquet"),
    )
    assert result.distinct("findings", "value") == expected["findings"]["value"].nunique()
    assert result.distinct("findings", "host") == expected["findings"]["host"].nunique()
    pd.testing.assert_frame_equal(result.findings, expected["findings"], check_exact=True)


@pytest.mark.parametrize("case", ["sample", "all-together"])
def test_findings_packed_while_collecting_give_the_same_tables(case, tmp_path, monkeypatch, sample_capture):
    """The pipeline's collector packs its findings into Arrow chunks as they come (here every 7
    rows, in one process): the same files and DataFrames as the pandas path."""
    packs = []
    pack = Rows.pack
    monkeypatch.setattr(pipeline, "CHUNK_ROWS", 7)
    monkeypatch.setattr(Rows, "pack", lambda self: packs.append(len(self._findings)) or pack(self))
    result, rows = analysed(CASES[case](tmp_path, sample_capture), monkeypatch)
    assert packs and min(packs) >= 7
    assert sum(packs) <= len(rows.findings), "a finding was packed twice (chunks unpacked while collecting)"
    expected = reference_frames(rows)
    reference_write(expected, tmp_path / "reference")
    pipeline.write_tables(result, tmp_path / "arrow")
    for name in FILES:
        assert (tmp_path / "arrow" / name).read_bytes() == (tmp_path / "reference" / name).read_bytes(), name
    for name, frame in expected.items():
        pd.testing.assert_frame_equal(getattr(result, name), frame, check_exact=True)


def test_the_sample_with_its_profile_marks_persistence_like_the_pandas_path(
    tmp_path, monkeypatch, sample_capture
):
    """Known values and three modes: identifier findings recur, so persistence marks are made."""
    result, rows = analysed([sample_capture], monkeypatch, Profile.load(sample_capture / "profile.json"))
    expected = reference_frames(rows)
    assert expected["findings"]["evidence"].str.contains("persistence").sum() >= 5
    pd.testing.assert_frame_equal(result.findings, expected["findings"], check_exact=True)


def test_a_frame_once_built_is_what_gets_written(tmp_path, sample_capture):
    result = pipeline.analyze([sample_capture])
    result.findings.loc[0, "value"] = "changed by the caller"
    pipeline.write_tables(result, tmp_path / "out")
    assert (
        pq.read_table(tmp_path / "out" / "findings.parquet").column("value")[0].as_py()
        == "changed by the caller"
    )
    assert result.size("findings") == len(result.findings)


def test_summary_counts_without_frames_equal_the_frames(sample_capture):
    tables = pipeline.analyze([sample_capture])
    counts = [tables.size(n) for n in pipeline.TABLES] + [
        tables.distinct("findings", "data_type"),
        tables.distinct("findings", "host"),
    ]
    frames = pipeline.analyze([sample_capture])
    assert counts == [len(getattr(frames, n)) for n in pipeline.TABLES] + [
        frames.findings["data_type"].nunique(),
        frames.findings["host"].nunique(),
    ]
    assert counts[2] > 0


@pytest.mark.parametrize("case", list(CASES))
def test_no_input_warning_is_missed_by_the_pandas_free_check(case, tmp_path, sample_capture):
    """run_analysis only asks input_warnings (pandas) when may_warn_about_inputs says it could warn."""
    result = pipeline.analyze(CASES[case](tmp_path, sample_capture))
    may_warn = may_warn_about_inputs(result)
    warnings = input_warnings(result)
    if warnings:
        assert may_warn
    assert may_warn == case.startswith("empty-har") or case == "dns-pcap" or bool(warnings)


def test_mixed_apps_in_one_capture_are_seen_by_the_check(tmp_path):
    from tests.support_report import browsing_flows, write_capture

    flows = browsing_flows("com.a", "normal", 1_700_000_000.0) + browsing_flows(
        "com.b", "normal", 1_700_000_100.0
    )
    mixed = write_capture(tmp_path / "mixed", flows)
    result = pipeline.analyze([mixed])
    assert may_warn_about_inputs(result)
    assert any("holds traffic of 2 apps" in w for w in input_warnings(result))
    apart = [
        write_capture(tmp_path / a, browsing_flows(a, "normal", 1_700_000_000.0)) for a in ("com.a", "com.b")
    ]
    assert not may_warn_about_inputs(pipeline.analyze(apart))


def test_analyze_of_the_sample_does_not_import_pandas(tmp_path, sample_capture):
    """The point of the Arrow tables: a small capture answers without pandas' 0.4 s import."""
    import subprocess
    import sys

    code = (
        "import sys\nfrom phonehome.analysis.cli.main import main\n"
        f"code = main(['analyze', {str(sample_capture)!r}, '-o', {str(tmp_path / 'out')!r}])\n"
        "assert 'pandas' not in sys.modules, 'pandas was imported'\n"
        "sys.exit(code)"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, env=os.environ
    )
    assert done.returncode == 0, done.stderr
    assert "findings" in done.stderr


def test_findings_parquet_bytes_do_not_depend_on_the_workers(tmp_path, monkeypatch, sample_capture):
    """Findings chunks follow the workers' ranges; the Parquet row groups do not (CHUNK_ROWS rows
    each, here 20), so `-j 1` and `-j 2` write the same bytes."""
    import shutil

    from phonehome.analysis import parallel

    target = tmp_path / "capture"
    shutil.copytree(sample_capture, target)
    (target / "flows.mitm").write_bytes((sample_capture / "flows.mitm").read_bytes() * 5)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 10)
    monkeypatch.setattr(arrow_tables, "CHUNK_ROWS", 20)
    monkeypatch.setattr(pipeline, "CHUNK_ROWS", 20)
    written = {}
    for workers in (1, 2):
        result = pipeline.analyze([target], workers=workers)
        pipeline.write_tables(result, tmp_path / f"j{workers}")
        written[workers] = (tmp_path / f"j{workers}" / "findings.parquet").read_bytes()
    groups = pq.ParquetFile(tmp_path / "j2" / "findings.parquet").metadata
    sizes = [groups.row_group(i).num_rows for i in range(groups.num_row_groups)]
    assert len(sizes) > 2 and set(sizes[:-1]) == {20}, sizes
    assert written[1] == written[2]


def test_a_frame_interrupted_while_built_leaves_the_table(monkeypatch, sample_capture):
    """Building a DataFrame can be interrupted (Ctrl-C in a notebook): the Arrow table stays, so the
    next access and write_tables still work."""
    result = pipeline.analyze([sample_capture])
    real_frame = arrow_tables.frame

    def interrupted(table, name):
        raise KeyboardInterrupt

    monkeypatch.setattr(arrow_tables, "frame", interrupted)
    with pytest.raises(KeyboardInterrupt):
        result.findings  # noqa: B018
    monkeypatch.setattr(arrow_tables, "frame", real_frame)
    assert len(result.findings) == result.size("findings") > 0


@pytest.mark.parametrize("radix_limit", [2**63, 1], ids=["one-number", "unique-rows"])
@pytest.mark.parametrize("seed", range(6))
def test_persistence_marked_per_distinct_value_equals_the_pandas_rule(seed, radix_limit, monkeypatch):
    """arrow_tables.mark_persistence decides per chunk's distinct (data type, value, session,
    mode) and maps evidence and confidence per distinct value: on random findings tables (shared
    identifiers across sessions and modes and chunks, evidence already marked, every confidence,
    linking and other data types) it marks exactly the rows the pandas rule marks."""
    import random

    rng = random.Random(seed)
    monkeypatch.setattr(arrow_tables, "CHUNK_ROWS", rng.choice([5, 13, 64]))
    monkeypatch.setattr(arrow_tables, "_RADIX_LIMIT", radix_limit)  # 1: numpy's unique rows
    identifiers = [f"{rng.getrandbits(64):016x}" for _ in range(12)] + ["user@example.com", "1.2.3", "en-US"]
    rows = []
    for n in range(rng.randrange(50, 400)):
        values = {c: "" for c in FINDINGS_COLUMNS}
        values.update(
            session=rng.choice(["s1", "s2", "s3"]),
            mode=rng.choice(["normal", "incognito"]),
            flow_id=str(n),
            data_type=rng.choice(["device_id.android_id", "user_id", "token", "url", "contact.email", "os"]),
            value=rng.choice(identifiers),
            confidence=rng.choice(["low", "medium", "high"]),
            evidence=rng.choice(["key", "key+value_shape", "known_value+persistence", "schema"]),
        )
        values["timestamp"] = float(n)
        rows.append(tuple(values[c] for c in FINDINGS_COLUMNS))
    expected = reference_mark_persistence(findings_from_rows(list(rows)))
    table = arrow_tables.findings_table(arrow_tables.pack_findings(list(rows)), [])
    assert table.column("value").num_chunks > 1
    got = arrow_tables.frame(table, "findings")
    assert got["evidence"].tolist() == expected["evidence"].tolist()
    assert got["confidence"].tolist() == expected["confidence"].tolist()
    pd.testing.assert_frame_equal(got, expected, check_exact=True)


def test_an_error_writing_the_csv_is_raised(tmp_path, sample_capture):
    """findings.csv and findings.parquet are written in one pass: an error on either reaches the
    caller (here findings.csv is a directory)."""
    result = pipeline.analyze([sample_capture])
    (tmp_path / "out" / "findings.csv").mkdir(parents=True)
    with pytest.raises(OSError):
        pipeline.write_tables(result, tmp_path / "out")


def test_findings_written_in_one_pass_equal_the_two_writers(tmp_path, monkeypatch, sample_capture):
    """The findings decoded once a slice at a time for both files (here slices of 7 rows) give
    the bytes sharing.write_csv and pq.write_table give of the whole plain table."""
    monkeypatch.setattr(arrow_tables, "CHUNK_ROWS", 7)
    result = pipeline.analyze([sample_capture])
    findings = result.table("findings")
    assert findings.num_rows > 3 * 7
    pipeline.write_tables(result, tmp_path / "one-pass")
    sharing.write_csv(arrow_tables.plain(findings), tmp_path / "findings.csv")
    assert (tmp_path / "one-pass" / "findings.csv").read_bytes() == (tmp_path / "findings.csv").read_bytes()
    written = pq.ParquetFile(tmp_path / "one-pass" / "findings.parquet")
    assert written.metadata.num_row_groups == -(-findings.num_rows // 7)
    assert written.read().equals(arrow_tables.plain(findings), check_metadata=True)
