"""Synthetic mitmproxy dumps of N flows for the benchmarks, built from the bundled sample.

Every flow of captures/sample-mint-browser (Sensors Analytics batches: form > base64 > gzip >
json, tracking pixels, a JWT, protobuf, DNS, page loads) is repeated with a fresh flow id, a
later timestamp and a distinct query parameter, until the dump holds N flows. Bodies stay the
real telemetry bodies of the sample, so decoding does the real work per request.

    python benchmarks/make_dumps.py 5000 20000 100000 --out /tmp/phonehome-bench
"""

from __future__ import annotations

import argparse
import copy
import importlib.util
import sys
import uuid
from pathlib import Path

from mitmproxy.io import tnetstring

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = Path("/tmp/phonehome-bench")


def _template_states() -> list[dict]:
    """The sample's flows as mitmproxy state dicts (what FlowWriter would serialise)."""
    spec = importlib.util.spec_from_file_location("make_sample", ROOT / "captures" / "make_sample.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("make_sample", module)
    spec.loader.exec_module(module)
    return [f.get_state() for f in module.build().flows]


def _variant(state: dict, copy_no: int, index: int) -> dict:
    out = copy.copy(state)
    out["id"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"phonehome-bench/{copy_no}/{index}"))
    shift = copy_no * 600.0
    out["timestamp_created"] = state["timestamp_created"] + shift
    if out.get("type") == "http":
        request = dict(state["request"])
        request["timestamp_start"] = state["request"]["timestamp_start"] + shift
        sep = b"&" if b"?" in request["path"] else b"?"
        request["path"] = request["path"] + sep + b"bench=" + str(copy_no).encode()
        out["request"] = request
    return out


def write_dump(path: Path, flows: int) -> Path:
    """Write a dump of exactly `flows` flows to `path` (streamed, constant memory)."""
    templates = _template_states()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".partial")
    with tmp.open("wb") as fo:
        for n in range(flows):
            copy_no, index = divmod(n, len(templates))
            fo.write(tnetstring.dumps(_variant(templates[index], copy_no, index)))
    tmp.replace(path)
    return path


def dump_path(out: Path, flows: int) -> Path:
    return out / f"bench-{flows}.mitm"


def ensure_dump(out: Path, flows: int) -> Path:
    """The cached dump of `flows` flows, generated on first use."""
    path = dump_path(out, flows)
    if not path.exists():
        write_dump(path, flows)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("sizes", nargs="*", type=int, default=[5_000, 20_000, 100_000])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)
    for size in args.sizes:
        path = write_dump(dump_path(args.out, size), size)
        print(f"{path}: {size} flows, {path.stat().st_size / 1e6:.1f} MB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
