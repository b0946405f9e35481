"""Decompression bombs: time and peak memory of decoding each, every bomb in its own process.

The bombs of issue 15 (hostile server / hostile file):
  brotli-16MiB   a 16 MiB brotli request body (1 GiB of zeros, then 15 MiB of random bytes)
  gzip-members   8 MB of concatenated empty gzip members (400k members, no output at all)
  zhar-1GiB      a 1 MB .zhar (zlib) that inflates to 1 GiB
  zip-1GiB       the same bomb as a zipped HAR
  zstd-1GiB      a zstd body inflating to 1 GiB
Each is written once to --dir, then a fresh interpreter decodes it (decode_request with the
matching Content-Encoding, or read_har) and reports its own wall time and peak RSS
(resource.getrusage(RUSAGE_SELF).ru_maxrss, which includes the interpreter and the imports).
The target is < 10 s and < 512 MiB each; figures are printed, never asserted.

    python benchmarks/bombs.py [--dir /tmp/phonehome-bombs] [--only gzip-members]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import subprocess
import sys
import zipfile
import zlib
from pathlib import Path

import brotli
import zstandard

ZEROS_MIB = 1024  # the inflated size of the high-ratio bombs


def _zeros(total_mib: int):
    block = b"\0" * (1 << 20)
    for _ in range(total_mib):
        yield block


def make_brotli(path: Path) -> None:
    comp = brotli.Compressor(quality=1)
    with path.open("wb") as fo:
        for block in _zeros(ZEROS_MIB):
            fo.write(comp.process(block))
        fo.write(comp.process(os.urandom(15 << 20)))
        fo.write(comp.finish())


def make_gzip_members(path: Path) -> None:
    member = gzip.compress(b"", mtime=0)
    path.write_bytes(member * (8_000_000 // len(member)))


def _har_bomb_chunks():
    yield b'{"log": {"version": "1.2", "entries": []'
    spaces = b" " * (1 << 20)
    for _ in range(ZEROS_MIB):
        yield spaces
    yield b"}}"


def make_zhar(path: Path) -> None:
    comp = zlib.compressobj(9)
    with path.open("wb") as fo:
        for chunk in _har_bomb_chunks():
            fo.write(comp.compress(chunk))
        fo.write(comp.flush())


def make_zip(path: Path) -> None:
    zf = zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=9)
    with zf, zf.open("bomb.har", "w", force_zip64=True) as member:
        for chunk in _har_bomb_chunks():
            member.write(chunk)


def make_zstd(path: Path) -> None:
    comp = zstandard.ZstdCompressor(level=1)
    with path.open("wb") as fo, comp.stream_writer(fo, closefd=False) as writer:
        for block in _zeros(ZEROS_MIB):
            writer.write(block)


BOMBS = {
    "brotli-16MiB": ("bomb.br", make_brotli, "br"),
    "gzip-members": ("bomb.gz", make_gzip_members, "gzip"),
    "zhar-1GiB": ("bomb.zhar", make_zhar, None),
    "zip-1GiB": ("bomb-zip.zhar", make_zip, None),
    "zstd-1GiB": ("bomb.zst", make_zstd, "zstd"),
}

CHILD = r"""
import json, resource, sys, time
path, coding = sys.argv[1], sys.argv[2]
from phonehome.analysis.decode import decode_request
from phonehome.analysis.records import HttpRecord, Labels, SourceReport
from phonehome.analysis.sources import CaptureError
from phonehome.analysis.sources.har import read_har
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
data = open(path, "rb").read()
start = time.perf_counter()
if coding:
    rec = HttpRecord(source=path, flow_id="bomb", labels=Labels(session="bomb"), timestamp=0.0,
                     method="POST", scheme="https", host="bomb.example", port=443, path="/",
                     request_headers=(("Content-Encoding", coding),), request_body=data)
    res = decode_request(rec)
    outcome = {"truncated": res.truncated, "fields": len(res.fields),
               "chars": sum(len(f.value) for f in res.fields), "notes": res.notes[:2]}
else:
    del data
    try:
        n = sum(1 for _ in read_har(path, Labels(), SourceReport(path)))
        outcome = {"records": n}
    except CaptureError as exc:
        outcome = {"error": str(exc)[:160]}
outcome["seconds"] = round(time.perf_counter() - start, 2)
outcome["rss_before_mib"] = round(before / 1024)
outcome["peak_rss_mib"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
print(json.dumps(outcome))
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default="/tmp/phonehome-bombs", help="where the bombs are written (kept)")
    parser.add_argument("--only", choices=sorted(BOMBS), action="append", help="run only these bombs")
    args = parser.parse_args(argv)
    out = Path(args.dir)
    out.mkdir(parents=True, exist_ok=True)
    worst = 0
    for name in args.only or BOMBS:
        filename, make, coding = BOMBS[name]
        path = out / filename
        if not path.exists():
            make(path)
        proc = subprocess.run(
            [sys.executable, "-c", CHILD, str(path), coding or ""],
            capture_output=True,
            text=True,
            timeout=300,
        )
        if proc.returncode:
            print(f"{name:14} FAILED rc={proc.returncode}: {proc.stderr.strip().splitlines()[-1:]}")
            worst = 1
            continue
        result = json.loads(proc.stdout.strip().splitlines()[-1])
        size = path.stat().st_size
        print(
            f"{name:14} input {size / 2**20:7.2f} MiB  {result.pop('seconds'):6.2f} s  "
            f"peak RSS {result.pop('peak_rss_mib'):5d} MiB "
            f"(after imports {result.pop('rss_before_mib')} MiB)  " + json.dumps(result)
        )
    return worst


if __name__ == "__main__":
    sys.exit(main())
