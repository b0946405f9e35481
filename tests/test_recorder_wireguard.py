"""`--headless --wireguard`: the WireGuard client config is printed as a terminal QR code."""

from __future__ import annotations

import re
import signal
import subprocess
import time
from pathlib import Path

from phonehome.addons import wgqr
from tests.support_proxy import MITMDUMP, ROOT, free_port

RECORDER = ROOT / "addons" / "recorder.py"


def test_wireguard_config_is_shown_as_a_qr_code(tmp_path: Path) -> None:
    port = free_port()  # a TCP port number that is free; WireGuard listens on it over UDP
    cmd = [str(MITMDUMP), "--mode", f"wireguard@{port}", "--set", f"confdir={tmp_path / 'conf'}"]
    cmd += ["-s", str(RECORDER), "--set", f"phonehome_dir={tmp_path / 'caps'}"]
    cmd += ["--set", "phonehome_wireguard_qr=true"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 30
        while not (tmp_path / "conf" / "wireguard.conf").exists() and proc.poll() is None:
            assert time.monotonic() < deadline
            time.sleep(0.1)
        time.sleep(2)  # the QR code is printed once the server runs
        proc.send_signal(signal.SIGINT)
        out = proc.communicate(timeout=30)[0]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    config = re.search(r"\[Interface\].*?Endpoint = \S+", out, re.S)
    assert config, out
    assert "Scan with the WireGuard app" in out
    assert wgqr.qr_text(config.group(0)) in out  # the code encodes exactly mitmproxy's own config


def test_qr_text_is_drawn_and_depends_on_the_config() -> None:
    a, b = wgqr.qr_text("[Interface]\nPrivateKey = a"), wgqr.qr_text("[Interface]\nPrivateKey = b")
    assert a != b and a.count("\n") > 10
