"""A request the decoder or classifier fails on (a bug) costs that request, not the run.

The bug is injected: `classify_request` raises for chosen flows. The rest is the real reader,
pipeline, workers' ranges, tables, coverage and command line. The run keeps every other finding,
keeps the failed flow's row with what it carried counted as opaque (so coverage treats it as
unseen), says which flow and why, and exits 2 like other input that could not be read.
"""

from __future__ import annotations

import pandas as pd
import pyarrow.parquet as pq

from phonehome.analysis import parallel, rows
from phonehome.analysis.cli import main
from phonehome.analysis.pipeline import build_analysis, default_labels, load_profiles
from phonehome.analysis.records import SourceReport
from phonehome.analysis.rows import RowCollector, RowSettings
from phonehome.analysis.sources.framing import record_offsets
from phonehome.analysis.verdicts.coverage import coverage
from tests.test_parallel import many_records  # noqa: F401  (a fixture)


def fail_on(monkeypatch, flow_ids: set[str]) -> None:
    """Make classify_request raise for these flows, as a bug in one rule would."""
    real = rows.classify_request

    def classify(record, *args):
        if record.flow_id in flow_ids:
            raise KeyError("injected bug")
        return real(record, *args)

    monkeypatch.setattr(rows, "classify_request", classify)


def richest_flow(analysis) -> str:
    """The flow with the most findings."""
    return str(analysis.findings.groupby("flow_id").size().idxmax())


def test_the_run_goes_on_and_says_which_request_failed(
    sample_capture, sample_analysis, tmp_path, monkeypatch, capsys
):
    failing = richest_flow(sample_analysis)
    fail_on(monkeypatch, {failing})
    out = tmp_path / "out"
    assert main(["analyze", str(sample_capture), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert failing in err and "KeyError" in err and "injected bug" in err and "please report" in err
    assert "Traceback" not in err

    flows = pq.read_table(out / "flows.parquet").to_pandas()
    findings = pd.read_csv(out / "findings.csv", dtype=str, keep_default_na=False)
    assert len(flows) == len(sample_analysis.flows)  # every flow still has its row
    expected = sample_analysis.findings[sample_analysis.findings["flow_id"] != failing]
    assert len(findings) == len(expected) > 0
    assert failing not in set(findings["flow_id"])
    row = flows[flows["flow_id"] == failing].iloc[0]
    assert row["fields"] == 0 and bool(row["decode_truncated"]) and row["opaque_bytes"] > 0

    before = coverage(sample_analysis.flows, sample_analysis.contacts)
    after = coverage(flows, sample_analysis.contacts)
    opaque = after[(after["reason"] == "opaque_payload") & (after["host"] == row["host"])]
    assert len(opaque) == 1 and int(opaque["bytes"].iloc[0]) >= row["opaque_bytes"]
    was = before[(before["reason"] == "opaque_payload") & (before["host"] == row["host"])]
    assert int(opaque["count"].iloc[0]) == (int(was["count"].iloc[0]) if len(was) else 0) + 1


def test_requests_failed_in_worker_ranges_reach_the_report(many_records, sample_analysis, monkeypatch):  # noqa: F811
    """The ranges' rows carry the failures back; merged, they are the input's damage, in order."""
    failing = richest_flow(sample_analysis)
    fail_on(monkeypatch, {failing})
    dump = many_records / "flows.mitm"
    settings = RowSettings(load_profiles([many_records], None))
    ranges = parallel.split_ranges(record_offsets(dump), dump.stat().st_size, 3)
    tasks = [(dump, a, b, default_labels(dump, None, None), settings) for a, b in ranges]
    parts = [parallel.analyse_range(*task) for task in tasks]
    assert sum(len(part.rows.unread) for part in parts) == 5  # the dump holds the sample 5 times
    report = SourceReport(str(many_records))
    collector = RowCollector(settings)
    parallel._merge(parts, report, collector, repeated_warnings=False)
    analysis = build_analysis(collector.take(), [report], settings.profile)
    assert len(report.damage) == 5 and all(failing in message for message in report.damage)
    assert analysis.damaged == [str(many_records)]
    assert len(analysis.flows) == 5 * len(sample_analysis.flows)
    assert failing not in set(analysis.findings["flow_id"])


def test_a_failing_decoder_is_caught_too(sample_capture, sample_analysis, monkeypatch):
    failing = richest_flow(sample_analysis)
    real = rows.decode_request

    def decode(record):
        if record.flow_id == failing:
            raise RecursionError("injected")
        return real(record)

    monkeypatch.setattr(rows, "decode_request", decode)
    from phonehome.analysis.pipeline import analyze

    analysis = analyze([sample_capture])
    assert analysis.damaged == [str(sample_capture)]
    assert len(analysis.flows) == len(sample_analysis.flows)
    assert failing not in set(analysis.findings["flow_id"])
    assert len(analysis.findings) == (sample_analysis.findings["flow_id"] != failing).sum()
