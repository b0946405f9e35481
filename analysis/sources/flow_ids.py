"""Flow ids for records of inputs that carry none (HAR entries, pcap requests).

A mitmproxy dump gives each flow its UUID. A HAR entry or a request reassembled from a pcap has
no id of its own, so it is numbered within its file. The number alone is not enough: two inputs
of one run may share a file name (`capture.pcap` in each session folder), and every join by flow
id (a finding to its request, a worked example to its bytes, a claim to its findings, redaction
to what it withholds) would then mix their requests. So the id also carries a short digest of the
file's size and its first and last 64 KiB: the same file gives the same ids wherever it lies
(overlapping copies are deduplicated by content anyway), two captures differ. Two files that
differ only inside their middle, with equal sizes, still share it (a copy hand-edited in place);
a FIFO has no digest (it cannot be read twice).
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from pathlib import Path

_EDGE_BYTES = 64 * 1024


def file_tag(path: str | os.PathLike[str]) -> str:
    """`capture~3fa2c1`: what a reader prefixes its record numbers with (`<tag>#<n>`); computed
    once per reading (a stat, two short reads), so a file rewritten in place gets a new one."""
    name = os.fspath(path)
    try:
        st = os.stat(name)
    except OSError:
        return Path(name).stem
    if not stat.S_ISREG(st.st_mode):  # a FIFO or device: reading it again would block or consume it
        return Path(name).stem
    return _tag(name, st.st_size, st.st_mtime_ns)


@functools.lru_cache(maxsize=256)
def _tag(path: str, size: int, mtime_ns: int) -> str:
    stem = Path(path).stem
    digest = hashlib.blake2b(size.to_bytes(8, "little"), digest_size=3, person=b"phonehome-id")
    try:
        with open(path, "rb") as handle:
            digest.update(handle.read(_EDGE_BYTES))
            if size > 2 * _EDGE_BYTES:
                handle.seek(size - _EDGE_BYTES)
            digest.update(handle.read(_EDGE_BYTES))
    except OSError:  # the reader reports its own errors
        return stem
    return f"{stem}~{digest.hexdigest()}"
