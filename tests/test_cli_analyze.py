"""`phonehome analyze` end to end: tables written, labels, exit codes and one-line errors."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from phonehome.analysis.cli.main import main
from phonehome.analysis.findings import FINDINGS_COLUMNS, FLOWS_COLUMNS


def run_cli(*args: str) -> subprocess.CompletedProcess:
    """The installed console script, as a user runs it."""
    exe = shutil.which("phonehome") or str(Path(sys.executable).with_name("phonehome"))
    return subprocess.run([exe, *args], capture_output=True, text=True, timeout=120)


def test_analyze_writes_the_three_tables(tmp_path: Path, sample_capture: Path):
    out = tmp_path / "out"
    result = run_cli("analyze", str(sample_capture), "-o", str(out))
    assert result.returncode == 0, result.stderr
    findings_csv = pd.read_csv(out / "findings.csv", keep_default_na=False)
    findings = pd.read_parquet(out / "findings.parquet")
    flows = pd.read_parquet(out / "flows.parquet")
    assert list(findings.columns) == list(FINDINGS_COLUMNS)
    assert list(findings_csv.columns) == list(FINDINGS_COLUMNS)
    assert list(flows.columns) == list(FLOWS_COLUMNS)
    assert len(findings_csv) == len(findings)
    assert set(flows["mode"]) == {"normal", "incognito", "incognito-optout"}
    assert set(flows["app"]) == {"com.mi.globalbrowser.mini"}
    assert (flows["host"] == "sa.api.intl.miui.com").sum() == 6
    assert {"flow_id", "timestamp", "status", "request_size", "response_size"} <= set(flows.columns)
    assert (out / "findings.parquet").stat().st_mode & 0o077 == 0, "captured data is written user-only"


def test_app_and_mode_label_unlabelled_flows(tmp_path: Path, dumps_dir: Path):
    out = tmp_path / "out"
    code = main(
        [
            "analyze",
            str(dumps_dir / "flows_diff_data.mitm"),
            "--app",
            "com.android.chrome",
            "--mode",
            "incognito",
            "-o",
            str(out),
            "-q",
        ]
    )
    assert code == 0
    flows = pd.read_parquet(out / "flows.parquet")
    assert len(flows) == 5
    assert set(flows["app"]) == {"com.android.chrome"}
    assert set(flows["mode"]) == {"incognito"}
    assert set(flows["session"]) == {"flows_diff_data"}


def test_several_captures_in_one_run(tmp_path: Path, dumps_dir: Path, sample_capture: Path):
    out = tmp_path / "out"
    code = main(["analyze", str(sample_capture), str(dumps_dir / "dumpfile-7.mitm"), "-o", str(out), "-q"])
    assert code == 0
    flows = pd.read_parquet(out / "flows.parquet")
    assert set(flows["session"]) == {"sample-mint-browser", "dumpfile-7"}


@pytest.mark.parametrize(
    ("make", "expected"),
    [
        (lambda d: d / "missing.mitm", "no such file"),
        (lambda d: (d / "notes.txt").write_text("hello") and d / "notes.txt", "not a capture"),
        (lambda d: (d / "empty.mitm").write_bytes(b"") == 0 and d / "empty.mitm", "empty"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(tmp_path: Path, make, expected: str):
    path = make(tmp_path)
    result = run_cli("analyze", str(path), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert str(path) in lines[0] and expected in lines[0]
    assert "Traceback" not in result.stderr


def test_too_old_dump_is_exit_2(tmp_path: Path, dumps_dir: Path):
    result = run_cli("analyze", str(dumps_dir / "dumpfile-010.mitm"), "-o", str(tmp_path / "out"))
    assert result.returncode == 2
    assert "dumpfile-010.mitm" in result.stderr and "Traceback" not in result.stderr


def test_truncated_dump_warns_and_keeps_flows(tmp_path: Path, sample_capture: Path):
    data = (sample_capture / "flows.mitm").read_bytes()
    cut = tmp_path / "cut.mitm"
    cut.write_bytes(data[: len(data) // 2])
    out = tmp_path / "out"
    result = run_cli("analyze", str(cut), "-o", str(out))
    assert result.returncode == 2, "data was lost: exit 2, as for any bad input"
    assert "warning" in result.stderr and f"{cut}: damaged record at byte" in result.stderr
    assert f"error: {cut}: damaged capture" in result.stderr
    assert "Traceback" not in result.stderr
    kept = pd.read_parquet(out / "flows.parquet")
    assert 0 < len(kept) < 19, "the flows before the damage are kept"


def test_damage_in_the_middle_of_a_dump_keeps_both_sides(tmp_path: Path, sample_capture: Path, capsys):
    data = bytearray((sample_capture / "flows.mitm").read_bytes())
    middle = len(data) // 2
    data[middle : middle + 40] = b"\x00" * 40
    broken = tmp_path / "broken.mitm"
    broken.write_bytes(bytes(data))
    out = tmp_path / "out"
    assert main(["analyze", str(broken), "-o", str(out), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{broken}: damaged record at byte" in err and "resumed at byte" in err
    kept = pd.read_parquet(out / "flows.parquet")
    assert 18 <= len(kept) < 22
    assert kept["timestamp"].max() == pd.read_parquet(out / "flows.parquet")["timestamp"].max()


def test_report_on_a_damaged_har_writes_the_report_and_exits_2(tmp_path: Path, capsys):
    import json

    har = {
        "log": {
            "version": "1.2",
            "creator": {"name": "test", "version": "1"},
            "entries": [
                {
                    "startedDateTime": "2024-01-01T00:00:00Z",
                    "request": {
                        "method": "GET",
                        "url": "https://tracker.example.com/p?adid=a3c5e2f1-7b9d-4e8a-9c1f-2d4b6a8e0f13",
                        "httpVersion": "HTTP/1.1",
                        "headers": [],
                    },
                    "response": {"status": 200, "headers": []},
                },
                {"request": "not an object"},
            ],
        }
    }
    path = tmp_path / "tool.har"
    path.write_text(json.dumps(har))
    report = tmp_path / "r.html"
    assert main(["report", str(path), "-o", str(report), "-q"]) == 2
    err = capsys.readouterr().err
    assert f"{path}: entry 1 skipped" in err and f"error: {path}: damaged capture" in err
    assert "tracker.example.com" in report.read_text()


def test_fail_on_exits_1_when_asked(tmp_path: Path, sample_capture: Path):
    code = main(["analyze", str(sample_capture), "-o", str(tmp_path / "o"), "-q", "--fail-on", "any"])
    assert code == 1
    code = main(
        ["analyze", str(sample_capture), "-o", str(tmp_path / "o"), "-q", "--fail-on", "no.such.type"]
    )
    assert code == 2  # an unknown type is refused, not silently "no findings" (issue 16)


def test_bad_profile_is_exit_2(tmp_path: Path, sample_capture: Path, capsys):
    bad = tmp_path / "profile.json"
    bad.write_text("{not json")
    code = main(["analyze", str(sample_capture), "--profile", str(bad), "-o", str(tmp_path / "o")])
    assert code == 2
    assert str(bad) in capsys.readouterr().err


def test_non_utf8_everywhere_is_analysed_and_shown_escaped(tmp_path: Path):
    from mitmproxy.io import FlowWriter
    from mitmproxy.test import tflow

    f = tflow.tflow(resp=True)
    f.request.path = "/a\udcff/b?q=caf\udce9"
    f.request.headers[b"X-Bin\xff"] = b"\xfe\xff value"
    f.request.headers["content-type"] = "application/json"
    f.request.content = b'{"url": "http://x/\xff", "k": "\\ud800"}'
    dump = tmp_path / "nonutf8.mitm"
    with dump.open("wb") as fo:
        FlowWriter(fo).add(f)
    out = tmp_path / "out"
    assert main(["analyze", str(dump), "-o", str(out), "-q"]) == 0
    flows = pd.read_parquet(out / "flows.parquet")
    assert flows["url"].tolist() == ["http://address:22/a\\xff/b?q=caf\\xe9"]
    findings = pd.read_csv(out / "findings.csv", keep_default_na=False)
    assert all(isinstance(v, str) for v in findings["value"])


def test_redact_hides_identifiers_and_keeps_what_was_visited(tmp_path: Path, sample_capture: Path):
    plain, redacted = tmp_path / "plain", tmp_path / "redacted"
    assert main(["analyze", str(sample_capture), "-o", str(plain), "-q"]) == 0
    assert main(["analyze", str(sample_capture), "-o", str(redacted), "-q", "--redact"]) == 0
    before = pd.read_parquet(plain / "findings.parquet")
    after = pd.read_parquet(redacted / "findings.parquet")
    assert len(before) == len(after)
    secrets = set(before.loc[before["data_type"].str.startswith("device_id."), "value"])
    secrets |= set(before.loc[before["data_type"].isin(["token", "user_id", "contact.email"]), "value"])
    assert len(secrets) >= 8, "the sample carries many identifiers"
    written = b"".join(p.read_bytes() for p in redacted.iterdir())
    for secret in secrets:
        assert secret.encode() not in written, secret
    assert after["value"].str.startswith("redacted-").sum() >= len(secrets)
    # the same identifier maps to the same tag, so linkability stays visible
    android = after.loc[after["data_type"] == "device_id.android_id", "value"]
    assert android.nunique() <= 2 and (android.str.len() == len("redacted-") + 8).all()
    # what was visited and searched is the finding itself, so it stays readable
    assert set(after.loc[after["data_type"] == "search_query", "value"]) == {
        "flu symptoms",
        "divorce lawyer near me",
    }


def test_jobs_gives_the_same_tables_as_one_process(tmp_path: Path, sample_capture: Path, monkeypatch):
    from phonehome.analysis import parallel

    capture = tmp_path / "capture"
    shutil.copytree(sample_capture, capture)
    (capture / "flows.mitm").write_bytes((sample_capture / "flows.mitm").read_bytes() * 4)
    monkeypatch.setattr(parallel, "PARALLEL_MIN_RECORDS", 10)
    one, two = tmp_path / "one", tmp_path / "two"
    assert main(["analyze", str(capture), "-o", str(one), "-q", "-j", "1"]) == 0
    assert main(["analyze", str(capture), "-o", str(two), "-q", "-j", "2"]) == 0
    for name in ("findings.parquet", "flows.parquet", "contacts.parquet"):
        pd.testing.assert_frame_equal(pd.read_parquet(one / name), pd.read_parquet(two / name))
    assert len(pd.read_parquet(two / "flows.parquet")) == 4 * 22


def test_jobs_must_be_a_positive_number(tmp_path: Path, sample_capture: Path, capsys):
    with pytest.raises(SystemExit) as exc:
        main(["analyze", str(sample_capture), "-o", str(tmp_path), "-j", "0"])
    assert exc.value.code == 2
    assert "at least 1" in capsys.readouterr().err


def test_a_dump_and_its_har_export_are_counted_once(tmp_path: Path, sample_capture: Path, capsys):
    har = tmp_path / "same-session.har"
    assert main(["export", str(sample_capture), "--har", str(har), "-q"]) == 0
    alone, mixed = tmp_path / "alone", tmp_path / "mixed"
    assert main(["analyze", str(sample_capture), "-o", str(alone), "-q"]) == 0
    capsys.readouterr()
    assert main(["analyze", str(sample_capture), str(har), "-o", str(mixed)]) == 0
    err = capsys.readouterr().err
    flows_alone = pd.read_parquet(alone / "flows.parquet")
    flows_mixed = pd.read_parquet(mixed / "flows.parquet")
    assert len(flows_mixed) == len(flows_alone) == 22
    assert set(flows_mixed["source"]) == set(flows_alone["source"]), "the richer source (the dump) is kept"
    assert len(pd.read_parquet(mixed / "findings.parquet")) == len(
        pd.read_parquet(alone / "findings.parquet")
    )
    assert "22 request(s) also in another capture of this run, counted once" in err


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    errors = [line for line in err if not line.startswith("phonehome: warning:")]
    assert len(errors) == 1 and "Traceback" not in "\n".join(err), err
    assert errors[0].startswith("phonehome: error: ")
    return errors[0]


def test_an_unwritable_output_is_one_line_naming_it(tmp_path: Path, sample_capture: Path, capsys):
    blocker = tmp_path / "file-not-dir"
    blocker.write_text("x")
    for argv in (
        ["analyze", str(sample_capture), "-o", str(blocker / "out"), "-q"],
        ["export", str(sample_capture), "--har", str(tmp_path / "no" / "such" / "dir.har"), "-q"],
        ["report", str(sample_capture), "-o", str(blocker / "r.md"), "-q"],
    ):
        assert main(argv) == 2, argv
        line = _one_error_line(capsys)
        assert str(tmp_path) in line, line


@pytest.mark.parametrize("command", ["analyze", "report", "export"])
def test_every_reading_command_takes_the_same_input_options(tmp_path: Path, dumps_dir: Path, command, capsys):
    dump = dumps_dir / "flows_diff_data.mitm"
    out = {"analyze": ["-o", str(tmp_path / "o")], "report": ["-o", str(tmp_path / "r.md")]}
    out["export"] = ["--har", str(tmp_path / "x.har")]
    shared = ["--app", "com.x", "--mode", " Private ", "-j", "1", "--endpoints", str(tmp_path / "none.txt")]
    # a missing endpoint list is bad input for every command alike, before any capture is read
    assert main([command, str(dump), *shared, *out[command], "-q"]) == 2
    assert str(tmp_path / "none.txt") in _one_error_line(capsys)
    assert main([command, str(dump), *shared[:6], *out[command], "-q"]) == 0


def test_mode_and_app_options_are_normalised_or_refused(tmp_path: Path, dumps_dir: Path, capsys):
    dump = str(dumps_dir / "flows_diff_data.mitm")
    assert main(["analyze", dump, "--mode", "Private%20Tab", "-o", str(tmp_path / "a"), "-q"]) == 0
    assert set(pd.read_parquet(tmp_path / "a" / "flows.parquet")["mode"]) == {"incognito"}
    assert main(["analyze", dump, "--mode", "Sleepy", "-o", str(tmp_path / "b"), "-q"]) == 0
    assert "unknown mode 'sleepy' in --mode" in capsys.readouterr().err
    for bad in (["--mode", "a/b"], ["--app", "x" * 200]):
        with pytest.raises(SystemExit) as exc:
            main(["analyze", dump, *bad, "-o", str(tmp_path / "c")])
        assert exc.value.code == 2
        assert "Traceback" not in capsys.readouterr().err
