"""Decompression bombs are cut at the bound, marked truncated, and never raise (issue 15).

Behaviour only: time and memory of the full-size bombs are printed by benchmarks/bombs.py.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import zipfile
import zlib

import brotli
import brotlicffi
import pytest
import zstandard

from phonehome.analysis.decode import Limits, codecs, decode_request
from phonehome.analysis.records import Labels, SourceReport
from phonehome.analysis.sources import CaptureError
from phonehome.analysis.sources.har import inflation_limit, read_har
from tests.support_decode import record

SMALL = Limits(max_decompressed_bytes=1 << 20)


def _brotli_bomb(mib: int) -> bytes:
    comp = brotli.Compressor(quality=1)
    out = b"".join(comp.process(b"\0" * (1 << 20)) for _ in range(mib))
    return out + comp.finish()


def test_brotli_bomb_cut_at_the_bound():
    bomb = _brotli_bomb(64)
    assert len(bomb) < 64 * 1024  # a real bomb: tiny input, 64 MiB out
    res = codecs.decompress("brotli", bomb, 100_000)
    assert res is not None and res.truncated
    assert len(res.data) == 100_000 and set(res.data) == {0}


def test_brotli_body_marks_the_request_truncated():
    rec = record(headers={"Content-Encoding": "br"}, body=_brotli_bomb(8))
    res = decode_request(rec, SMALL)
    assert res.truncated
    assert any("max_decompressed_bytes" in n for n in res.notes)
    assert sum(len(f.value) for f in res.fields) <= SMALL.max_value_chars + 1


def test_brotli_small_output_limit_still_yields_the_whole_stream():
    # output held back by output_buffer_limit must be drained, not lost
    payload = os.urandom(3000) + json.dumps({"imei": "867530912345673"}).encode()
    res = codecs.decompress("brotli", brotli.compress(payload), len(payload))
    assert res is not None and not res.truncated and res.data == payload


def test_both_brotli_bindings_limit_output():
    bomb = _brotli_bomb(4)
    for d in (brotlicffi.Decompressor(),) + ((brotli.Decompressor(),) if codecs._BROTLI_LIMITS else ()):
        first = d.process(bomb, output_buffer_limit=4096)
        assert len(first) <= 1 << 16
        assert not d.can_accept_more_data()


def test_cut_brotli_stream_is_not_taken_as_decoded():
    data = brotli.compress(os.urandom(5000))
    assert codecs.decompress("brotli", data[: len(data) // 2], 1 << 20) is None


def test_empty_gzip_members_are_cut_and_marked():
    member = gzip.compress(b"", mtime=0)
    body = member * (codecs.MAX_GZIP_MEMBERS + 10)
    res = codecs.decompress("gzip", body, 1 << 20)
    assert res is not None and res.truncated and res.data == b""
    assert "MAX_GZIP_MEMBERS" in res.bound
    rec = record(headers={"Content-Encoding": "gzip"}, body=body)
    decoded = decode_request(rec)
    assert decoded.truncated
    assert any("MAX_GZIP_MEMBERS" in n for n in decoded.notes)


def test_gzip_members_under_the_cap_are_all_read():
    body = b"".join(gzip.compress(f"{i},".encode(), mtime=0) for i in range(500))
    res = codecs.decompress("gzip", body, 1 << 20)
    assert res is not None and not res.truncated
    assert res.data == "".join(f"{i}," for i in range(500)).encode()


def test_gzip_bomb_cut_exactly_at_the_bound():
    body = gzip.compress(b"A" * (8 << 20))
    res = codecs.decompress("gzip", body, 12345)
    assert res is not None and res.truncated and res.data == b"A" * 12345


def test_truncated_gzip_keeps_its_prefix_as_incomplete():
    data = gzip.compress(os.urandom(50_000))
    res = codecs.decompress("gzip", data[:30_000], 1 << 20)
    assert res is not None and not res.complete and 0 < len(res.data) < 50_000


def test_zstd_bomb_cut_and_oversized_window_refused():
    bomb = zstandard.ZstdCompressor(level=1).compress(b"\0" * (32 << 20))
    res = codecs.decompress("zstd", bomb, 50_000)
    assert res is not None and res.truncated and len(res.data) == 50_000
    # a frame that makes the decoder allocate a 64 MiB window is not decoded at all
    params = zstandard.ZstdCompressionParameters(window_log=26, write_content_size=False)
    buf = io.BytesIO()
    with zstandard.ZstdCompressor(compression_params=params).stream_writer(buf, closefd=False) as w:
        w.write(b"x" * 1000)
    assert zstandard.get_frame_parameters(buf.getvalue()).window_size > codecs.MAX_ZSTD_WINDOW
    assert codecs.decompress("zstd", buf.getvalue(), 1 << 20) is None


def test_zlib_bomb_in_base64_is_marked():
    import base64

    inner = base64.b64encode(zlib.compress(b"\0" * (4 << 20), 9)).decode()
    res = decode_request(record("/?d=" + inner.replace("+", "%2B").replace("/", "%2F")), SMALL)
    assert res.truncated


def _har_bomb_zlib(mib: int) -> bytes:
    comp = zlib.compressobj(9)
    parts = [comp.compress(b'{"log": {"entries": []')]
    parts += [comp.compress(b" " * (1 << 20)) for _ in range(mib)]
    return b"".join(parts) + comp.compress(b"}}") + comp.flush()


def test_zhar_bomb_refused_with_named_error(tmp_path, monkeypatch):
    import phonehome.analysis.sources.har as har

    monkeypatch.setattr(har, "MIN_INFLATE_LIMIT", 1 << 20)
    bomb = _har_bomb_zlib(64)
    path = tmp_path / "bomb.zhar"
    path.write_bytes(bomb)
    assert inflation_limit(len(bomb)) < 64 << 20
    with pytest.raises(CaptureError, match="decompression bomb") as err:
        list(read_har(path, Labels(), SourceReport(str(path))))
    assert str(path) in str(err.value)


def test_zip_har_bomb_refused(tmp_path, monkeypatch):
    import phonehome.analysis.sources.har as har

    monkeypatch.setattr(har, "MIN_INFLATE_LIMIT", 1 << 20)
    path = tmp_path / "bomb.zhar"
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("x.har", b'{"log": {"entries": []' + b" " * (64 << 20) + b"}}")
    with pytest.raises(CaptureError, match="decompression bomb"):
        list(read_har(path, Labels(), SourceReport(str(path))))


def test_zhar_within_the_limit_still_reads(tmp_path):
    har_doc = {
        "log": {
            "entries": [
                {"request": {"method": "GET", "url": f"https://a.example/{i}", "headers": []}}
                for i in range(50)
            ]
        }
    }
    path = tmp_path / "ok.zhar"
    path.write_bytes(zlib.compress(json.dumps(har_doc).encode()))
    assert len(list(read_har(path, Labels(), SourceReport(str(path))))) == 50


def test_huge_json_integer_does_not_hide_the_body():
    body = ('{"n": ' + "9" * 5000 + ', "imei": "867530912345673"}').encode()
    fields = {
        f.path: f.value
        for f in decode_request(record(headers={"Content-Type": "application/json"}, body=body)).fields
    }
    assert fields["body.imei"] == "867530912345673"
    assert fields["body.n"] == "9" * 5000
