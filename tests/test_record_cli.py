"""`phonehome record` builds the right mitmproxy command and tells the user what to do."""

from __future__ import annotations

import argparse

from phonehome.analysis.cli import record as record_cli
from phonehome.analysis.installed import recorder_addon


def parse(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    record_cli.add_arguments(parser)
    return parser.parse_args(list(argv))


def test_default_command_is_mitmweb_with_recorder() -> None:
    cmd = record_cli.build_command(parse("--app", "com.mi.globalbrowser", "--session", "s"))
    assert cmd[0].endswith("mitmweb")
    assert str(recorder_addon()) in cmd and recorder_addon().exists()
    assert "phonehome_app=com.mi.globalbrowser" in cmd and "phonehome_session=s" in cmd
    assert cmd[cmd.index("--listen-port") + 1] == "8080"


def test_wireguard_headless_proxyauth_and_passthrough() -> None:
    args = parse("--wireguard", "--headless", "--proxyauth", "u:p", "--", "--set", "stream_large_bodies=1m")
    cmd = record_cli.build_command(args)
    assert cmd[0].endswith("mitmdump")
    assert cmd[cmd.index("--mode") + 1] == "wireguard@51820"
    assert cmd[cmd.index("--proxyauth") + 1] == "u:p"
    assert cmd[-2:] == ["--set", "stream_large_bodies=1m"]


def test_instructions_name_markers_ca_and_warn_on_open_proxy(capsys) -> None:
    text = record_cli.instructions(parse("--port", "8888"), "192.168.1.5")
    assert "192.168.1.5" in text and "8888" in text and "mitm.it" in text
    assert "phonehome.mark/mode/incognito" in text and "Ctrl+C" in text
    assert "WARNING" in text
    assert "WARNING" not in record_cli.instructions(parse("--proxyauth", "a:b"), "10.0.0.2")
    assert "WireGuard" in record_cli.instructions(parse("--wireguard"), "10.0.0.2")
    assert record_cli.run(parse("--dry-run")) == 0
    assert "command:" in capsys.readouterr().out
