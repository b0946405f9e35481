"""`phonehome record` builds the right mitmproxy command and tells the user what to do."""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from phonehome.analysis.cli import record as record_cli
from phonehome.analysis.installed import recorder_addon
from tests.support_proxy import children, free_port, wait_port


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    record_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_default_command_is_mitmweb_with_recorder_on_a_loopback_ui() -> None:
    args = parse("--app", "com.mi.globalbrowser", "--session", "s", "--allow-client", "192.168.1.23")
    cmd = record_cli.build_command(args)
    assert cmd[0].endswith("mitmweb")
    assert str(recorder_addon()) in cmd and recorder_addon().exists()
    assert "phonehome_app=com.mi.globalbrowser" in cmd and "phonehome_session=s" in cmd
    assert "phonehome_allow_client=192.168.1.23" in cmd and "web_host=127.0.0.1" in cmd
    assert cmd[cmd.index("--listen-port") + 1] == "8080"
    record_cli.check(args)  # an allow-listed phone: fine


def test_wireguard_headless_passthrough_and_no_credential_on_the_command_line(tmp_path: Path) -> None:
    secret = tmp_path / "auth"
    secret.write_text("u:very-secret\n")
    args = parse(
        "--wireguard", "--headless", "--proxyauth", str(secret), "--", "--set", "stream_large_bodies=1m"
    )
    record_cli.check(args)
    cmd = record_cli.build_command(args)
    assert cmd[0].endswith("mitmdump")
    assert cmd[cmd.index("--mode") + 1] == "wireguard@51820"
    assert "phonehome_wireguard_qr=true" in cmd
    assert cmd[-2:] == ["--set", "stream_large_bodies=1m"]
    assert not any("very-secret" in word for word in cmd) and "--proxyauth" not in cmd
    assert record_cli.proxy_credential(args) == "u:very-secret"


@pytest.mark.parametrize(
    "argv, message",
    [
        (("--app", "X", "--", "--set", "phonehome_app=Y"), "phonehome_app"),
        (("--allow-client", "10.0.0.2", "--", "--set", "web_host=0.0.0.0"), "web_host"),
        (("--allow-client", "10.0.0.2", "--", "--listen-port", "9999"), "listen_port"),
        (("--allow-client", "10.0.0.2", "--", "--proxyauth", "u:p"), "proxyauth"),
        (("--port", "8888"), "--allow-client"),  # all interfaces, no allow-list: refused
        (("--allow-client", "the-phone"), "not an IP address"),
        (("--session", "../../etc", "--allow-client", "10.0.0.2"), "letters, digits"),
    ],
)
def test_refused_settings_exit_2_with_one_line(argv, message, capsys) -> None:
    assert record_cli.run(parse(*argv)) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1 and "Traceback" not in err


def test_proxyauth_file_problems(tmp_path: Path, capsys) -> None:
    assert record_cli.run(parse("--proxyauth", "user:pass", "--dry-run")) == 2
    assert "takes a file now" in capsys.readouterr().err
    empty = tmp_path / "empty"
    empty.write_text("")
    assert record_cli.run(parse("--proxyauth", str(empty), "--dry-run")) == 2
    assert f"{empty}:1: the file is empty" in capsys.readouterr().err


def test_instructions_name_markers_ca_protection_and_loopback(capsys) -> None:
    args = parse("--port", "8888", "--allow-client", "192.168.1.23")
    text = record_cli.instructions(args, "192.168.1.5")
    assert "192.168.1.5" in text and "8888" in text and "mitm.it" in text
    assert "phonehome.mark/mode/incognito" in text and "Ctrl+C" in text
    assert "Protection:" in text and "192.168.1.23 only" in text and "refuses proxied requests" in text
    assert "--wireguard" in text  # recommended on shared networks
    if not record_cli.web_has_token():
        assert "CVE-2025-23217" in text
    loop = record_cli.instructions(parse("--listen-host", "127.0.0.1"), "127.0.0.1")
    assert "adb reverse tcp:8080 tcp:8080" in loop and "loopback" in loop
    assert "WireGuard" in record_cli.instructions(parse("--wireguard"), "10.0.0.2")
    assert record_cli.run(parse("--dry-run", "--wireguard")) == 0
    assert "command:" in capsys.readouterr().out


def test_port_in_use_is_refused_and_leaves_no_directory(tmp_path: Path, capsys) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        args = parse("--listen-host", "127.0.0.1", "--port", str(port), "--dir", str(tmp_path / "caps"))
        assert record_cli.run(args) == 2
    err = capsys.readouterr().err
    assert f"127.0.0.1:{port}" in err and "--port" in err
    assert not (tmp_path / "caps").exists()


def test_summary_counts_flows_and_removes_an_empty_session(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "flows.mitm").write_bytes(b"")
    (empty / "session.json").write_text("{}")
    assert "removed the empty session directory" in record_cli.summary(empty, existed_before=False)
    assert not empty.exists()
    full = tmp_path / "full"
    full.mkdir()
    (full / "flows.mitm").write_bytes(b"x" * 10)
    (full / "session.json").write_text(json.dumps({"flows_written": 7}))
    text = record_cli.summary(full, existed_before=False)
    assert "7 flows saved" in text and f"phonehome analyze {full}" in text and full.exists()


@pytest.mark.skipif(sys.platform != "linux", reason="reads /proc/<pid>/cmdline")
def test_record_end_to_end_credential_hidden_and_ctrl_c_summary(tmp_path: Path) -> None:
    """The real command: mitmdump's command line holds no credential, the proxy asks for it, and
    Ctrl+C (SIGINT to the terminal's process group) ends with the count, the place and the next step."""
    secret = tmp_path / "auth"
    secret.write_text("u:hunter2-secret\n")
    port = free_port()
    caps = tmp_path / "caps"
    cmd = [
        str(Path(sys.executable).parent / "phonehome"),
        "record",
        "--headless",
        "--listen-host",
        "127.0.0.1",
    ]
    cmd += ["--port", str(port), "--proxyauth", str(secret), "--dir", str(caps), "--session", "cli"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True
    )
    try:
        wait_port(port, proc)
        mitm = children(proc.pid)
        assert mitm and all(b"hunter2" not in Path(f"/proc/{p}/cmdline").read_bytes() for p in mitm)
        with requests.Session() as s:
            s.trust_env = False
            s.proxies = {"http": f"http://127.0.0.1:{port}"}
            assert s.get("http://nowhere.invalid/", timeout=30).status_code == 407
            s.proxies = {"http": f"http://u:hunter2-secret@127.0.0.1:{port}"}
            assert s.get("http://nowhere.invalid/", timeout=30).status_code == 502  # through; no such host
        os.killpg(proc.pid, signal.SIGINT)
        out = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    assert proc.returncode == 0
    assert "hunter2" not in out
    assert (
        f"saved in {caps / 'cli' / 'flows.mitm'}" in out and f"Next: phonehome analyze {caps / 'cli'}" in out
    )
    assert "Traceback" not in out
