"""profile.json checked through the command line: types, unknown keys with the nearest valid one,
one line naming the file, exit 2 — and a valid profile still finds its values."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from phonehome.analysis.cli.main import main
from phonehome.analysis.profile import PROFILE_KEYS, Profile, ProfileError
from tests.support_report import PROFILE, browsing_flows, write_capture

T0 = 1_700_000_000.0


@pytest.fixture(scope="module")
def capture(tmp_path_factory) -> Path:
    return write_capture(tmp_path_factory.mktemp("cap") / "c", browsing_flows("com.a", "normal", T0))


def run_with_profile(tmp_path: Path, capture: Path, profile: object, capsys) -> tuple[int, list[str]]:
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    code = main(["analyze", str(capture), "--profile", str(path), "-q", "-o", str(tmp_path / "out")])
    return code, capsys.readouterr().err.strip().splitlines()


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (
            {"urls": "https://x.example/"},
            "'urls' must be a list of strings, got a string (write [\"https://x.example/\"])",
        ),
        ({"imei": "861234567890123"}, "'imei' must be a list of strings, got a string"),
        ({"imsi": 208150123456789}, "'imsi' must be a string, got the number 208150123456789 (quote it"),
        ({"search_terms": ["ok", 3]}, "'search_terms' item 1 must be a string, got the number 3"),
        ({"location": [48.85]}, "'location' must be [latitude, longitude], got a list of 1 item(s)"),
        ({"location": [48.85, 200]}, "'location' longitude 200 is out of range (-180..180)"),
        ({"location": ["48.85", 2.35]}, "'location' latitude must be a number, got a string"),
        ({"extra": {"ssid": 5}}, "'extra' value of 'ssid' must be a string, got the number 5"),
        ({"andriod_id": "x"}, "unknown key 'andriod_id' (did you mean 'android_id'?)"),
        ({"url": ["https://x.example/"]}, "unknown key 'url' (did you mean 'urls'?)"),
        ({"IMEI": ["1"]}, "unknown key 'IMEI' (did you mean 'imei'?)"),
        ({"wifi_password": "x"}, "unknown key 'wifi_password'; valid keys: " + ", ".join(PROFILE_KEYS)),
        (["not", "an", "object"], "a profile must be a JSON object, got a list"),
    ],
)
def test_bad_profile_is_one_line_naming_file_and_key(tmp_path, capture, capsys, profile, message):
    code, err = run_with_profile(tmp_path, capture, profile, capsys)
    assert code == 2
    assert len(err) == 1, err
    assert err[0].startswith(f"phonehome: error: {tmp_path / 'profile.json'}: ")
    assert message in err[0]


def test_not_json_names_line_and_column(tmp_path, capture, capsys):
    path = tmp_path / "profile.json"
    path.write_text('{\n  "imei": ["1"],\n  oops\n}')
    code = main(["analyze", str(capture), "--profile", str(path), "-q", "-o", str(tmp_path / "out")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and f"{path}: line 3 column 3: not JSON" in err[0]


def test_bad_profile_inside_a_capture_dir_is_refused_too(tmp_path, capsys):
    capture = write_capture(tmp_path / "c", browsing_flows("com.a", "normal", T0), profile={"emial": "a@b.c"})
    code = main(["report", str(capture), "-q", "-o", str(tmp_path / "r.md")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert str(capture / "profile.json") in err[0] and "did you mean 'email'?" in err[0]


def test_valid_profile_with_nulls_finds_its_values(tmp_path, capture, capsys):
    import pandas as pd

    code, err = run_with_profile(tmp_path, capture, {**PROFILE, "imsi": None, "extra": {}}, capsys)
    assert code == 0, err
    findings = pd.read_parquet(tmp_path / "out" / "findings.parquet")
    known = findings[findings["evidence"].str.contains("known-value")]
    assert {"url", "search_query", "device_id.android_id"} <= set(known["data_type"])


def test_every_documented_key_is_accepted():
    sample = {
        "imei": ["861234567890123"],
        "android_id": "9c2f41a7e3b5d810",
        "advertising_id": "a3c5e2f1-7b9d-4e8a-9c1f-2d4b6a8e0f13",
        "oaid": "b1c2d3e4f5a6b7c8",
        "serial": "f1a2b3c4",
        "mac": ["a4:50:46:1c:2e:7f"],
        "imsi": "208150123456789",
        "iccid": "8933150123456789012",
        "phone": "+33612345678",
        "email": "tester@example.com",
        "account_id": "u-12345",
        "location": [48.8566, 2.3522],
        "urls": ["https://news.example/a"],
        "search_terms": ["flu symptoms"],
        "extra": {"wifi_ssid": "TestLab"},
    }
    assert set(sample) == set(PROFILE_KEYS)
    assert Profile.from_dict(sample, "p.json").values == sample
    with pytest.raises(ProfileError, match=r"p\.json: 'phone' must be a string"):
        Profile.from_dict({**sample, "phone": 33612345678}, "p.json")
