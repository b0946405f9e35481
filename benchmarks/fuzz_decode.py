"""Fuzz campaign over analysis.decode (issue 9): many hostile requests, no crash/hang/blow-up.

Inputs: random bytes under every content type and Content-Encoding, real sample bodies mutated
(bit flips, truncation, splices) and re-wrapped in random layers (gzip/zlib/zstd/brotli/base64/
hex/json/msgpack/protobuf, multi-member gzip, concatenated zstd frames, flushed brotli), plus
decompression bombs (also issue 15's: empty gzip members, brotli meta-blocks, empty zstd
frames). For every input it checks the decoder's invariants (no internal error, bounded fields
and values) and times it. It prints how many inputs
were tried, failures, the slowest input and the process's peak memory; `--save N` writes the N
slowest inputs (and every failing one) to tests/data/decode/corpus/ for the test suite to replay.

    python benchmarks/fuzz_decode.py --inputs 20000 --seed 1 --save 5
"""

from __future__ import annotations

import argparse
import base64
import gzip
import hashlib
import json
import random
import resource
import sys
import time
import zlib
from pathlib import Path

import brotli
import msgpack
import zstandard

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from phonehome.analysis.decode import DEFAULT_LIMITS, decode_request  # noqa: E402
from phonehome.analysis.records import HttpRecord, Labels, SourceReport  # noqa: E402
from phonehome.analysis.sources import read_source  # noqa: E402

CORPUS = ROOT / "tests" / "data" / "decode" / "corpus"
CONTENT_TYPES = [
    None,
    "application/json",
    "application/x-www-form-urlencoded",
    "multipart/form-data; boundary=b",
    "application/x-protobuf",
    "application/x-msgpack",
    "application/octet-stream",
    "text/plain",
]
CODINGS = {
    None: None,
    "gzip": gzip.compress,
    "deflate": zlib.compress,
    "br": brotli.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
}
WRAPPERS = {
    "gzip": gzip.compress,
    "zlib": zlib.compress,
    "zstd": lambda d: zstandard.ZstdCompressor().compress(d),
    "b64": base64.b64encode,
    "b64url": lambda d: base64.urlsafe_b64encode(d).rstrip(b"="),
    "hex": lambda d: d.hex().encode(),
    "json": lambda d: json.dumps({"k": d.decode("latin-1")}).encode(),
    "form": lambda d: b"a=1&data=" + base64.b64encode(d).replace(b"+", b"%2B"),
    "msgpack": lambda d: msgpack.packb({"k": d, "s": "x"}),
    "protobuf": lambda d: b"\x0a" + bytes([min(len(d), 127)]) + d[:127],
    # issue 15: multi-member gzip, concatenated zstd frames, brotli in cut-up meta-blocks
    "gzip-members": lambda d: b"".join(gzip.compress(d[i : i + 97]) for i in range(0, max(len(d), 1), 97)),
    "zstd-frames": lambda d: b"".join(
        zstandard.ZstdCompressor().compress(d[i : i + 97]) for i in range(0, max(len(d), 1), 97)
    ),
    "brotli-flushed": lambda d: _brotli_flushed(d),
}


def _brotli_flushed(data: bytes) -> bytes:
    comp = brotli.Compressor(quality=1)
    out = [comp.process(data[i : i + 97]) + comp.flush() for i in range(0, len(data), 97)]
    return b"".join(out) + comp.finish()


def mutate(rng: random.Random, data: bytes) -> bytes:
    if not data:
        return bytes(rng.randrange(256) for _ in range(rng.randrange(64)))
    choice = rng.randrange(4)
    buf = bytearray(data)
    if choice == 0:
        for _ in range(rng.randrange(1, 8)):
            buf[rng.randrange(len(buf))] ^= 1 << rng.randrange(8)
    elif choice == 1:
        buf = buf[: rng.randrange(len(buf))]
    elif choice == 2:
        at = rng.randrange(len(buf))
        buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 32)))
    return bytes(buf)


def make_input(rng: random.Random, seeds: list[bytes]) -> tuple[dict[str, str], bytes, str]:
    kind = rng.randrange(4)
    if kind == 0:
        body, how = bytes(rng.randrange(256) for _ in range(rng.randrange(2048))), "random"
    elif kind == 1:
        body, how = mutate(rng, rng.choice(seeds)), "mutated"
    else:
        body = rng.choice(seeds) if kind == 2 else mutate(rng, rng.choice(seeds))
        layers = [rng.choice(sorted(WRAPPERS)) for _ in range(rng.randrange(1, 7))]
        for name in layers:
            body = WRAPPERS[name](body)
            if rng.random() < 0.1:
                body = mutate(rng, body)
        how = "wrapped:" + ">".join(reversed(layers))
    headers = {}
    ctype = rng.choice(CONTENT_TYPES)
    if ctype:
        headers["Content-Type"] = ctype
    coding = rng.choice(sorted(CODINGS, key=str))
    if coding:
        headers["Content-Encoding"] = coding
        body = CODINGS[coding](body) if rng.random() < 0.9 else mutate(rng, body)
    return headers, body, how


def bombs() -> list[tuple[dict[str, str], bytes, str]]:
    zeros = b"\0" * (64 << 20)
    return [
        ({}, gzip.compress(zeros, 1), "bomb:gzip"),
        ({}, zstandard.ZstdCompressor(level=3).compress(zeros), "bomb:zstd"),
        ({"Content-Encoding": "br"}, brotli.compress(zeros, quality=5), "bomb:brotli"),
        ({}, json.dumps({"x": base64.b64encode(zlib.compress(zeros, 9)).decode()}).encode(), "bomb:zlib-b64"),
        # issue 15: 8 MB of empty gzip members (quadratic before), brotli bomb in many meta-blocks
        ({"Content-Encoding": "gzip"}, gzip.compress(b"", mtime=0) * 400_000, "bomb:gzip-members"),
        ({"Content-Encoding": "br"}, _brotli_flushed(zeros[: 8 << 20]), "bomb:brotli-flushed"),
        (
            {"Content-Encoding": "zstd"},
            zstandard.ZstdCompressor().compress(b"") * 500_000,
            "bomb:zstd-empty-frames",
        ),
    ]


def check(decoded) -> str | None:
    if any(n.startswith("internal error") for n in decoded.notes):
        return "; ".join(decoded.notes)
    if len(decoded.fields) > DEFAULT_LIMITS.max_fields:
        return "too many fields"
    if any(len(f.value) > DEFAULT_LIMITS.max_value_chars for f in decoded.fields):
        return "value over limit"
    return None


def record(headers: dict[str, str], body: bytes) -> HttpRecord:
    return HttpRecord("fuzz", "f", Labels("fuzz"), 0.0, "POST", "https", "fuzz.example", 443, "/f?a=1",
                      request_headers=tuple(headers.items()), request_body=body)  # fmt: skip


def save(headers: dict[str, str], body: bytes, why: str) -> Path:
    CORPUS.mkdir(parents=True, exist_ok=True)
    name = hashlib.sha256(repr(headers).encode() + body).hexdigest()[:16]
    path = CORPUS / f"{name}.json"
    case = {"why": why, "path": "/f?a=1", "headers": sorted(headers.items()),
            "body_b64": base64.b64encode(body).decode()}  # fmt: skip
    path.write_text(json.dumps(case, indent=1) + "\n")
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--save", type=int, default=0, help="write the N slowest non-bomb inputs to the corpus"
    )
    args = parser.parse_args(argv)
    rng = random.Random(args.seed)
    sample = ROOT / "captures" / "sample-mint-browser"
    seeds = [r.request_body for r in read_source(sample, Labels(), SourceReport(str(sample)))
             if isinstance(r, HttpRecord) and r.request_body]  # fmt: skip
    seeds += [b'{"a":[1,2,{"b":"c"}]}', b"a=1&b=2", b"\x0a\x03abc\x10\x01"]
    cases = bombs() + [make_input(rng, seeds) for _ in range(args.inputs)]
    timings: list[tuple[float, int]] = []
    failures = 0
    truncated = 0
    start = time.perf_counter()
    for i, (headers, body, how) in enumerate(cases):
        t0 = time.perf_counter()
        decoded = decode_request(record(headers, body))
        timings.append((time.perf_counter() - t0, i))
        truncated += decoded.truncated
        problem = check(decoded)
        if problem:
            failures += 1
            print(f"FAIL {how}: {problem}")
            save(headers, body, f"failure: {how}: {problem}")
    elapsed = time.perf_counter() - start
    timings.sort(reverse=True)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"inputs tried       {len(cases)} (seed {args.seed}; {len(cases) - args.inputs} bombs)")
    print(f"failures           {failures}")
    print(f"truncated          {truncated}")
    print(f"total              {elapsed:.2f} s, mean {elapsed / len(cases) * 1e3:.3f} ms/input")
    for t, i in timings[:3]:
        print(f"slow               {t * 1e3:.1f} ms  {cases[i][2]}  {len(cases[i][1])} bytes")
    print(f"peak RSS           {peak:.0f} MiB")
    slow_non_bombs = [(t, i) for t, i in timings if not cases[i][2].startswith("bomb:")]  # bombs: tests
    for t, i in slow_non_bombs[: args.save]:
        headers, body, how = cases[i]
        print(f"saved              {save(headers, body, f'slow ({t * 1e3:.0f} ms): {how}').name}")
    return 1 if failures else 0


if __name__ == "__main__":
    raise SystemExit(main())
