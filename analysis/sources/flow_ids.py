"""Flow ids for records of inputs that carry none (HAR entries, pcap requests).

A mitmproxy dump gives each flow its UUID. A HAR entry or a request reassembled from a pcap has
no id of its own, so it is numbered within its file. The number alone is not enough: two inputs
of one run may share a file name (`capture.pcap` in each session folder), and every join by flow
id (a finding to its request, a worked example to its bytes, a claim to its findings, redaction
to what it withholds) would then mix their requests. So the id also carries a short digest of the
file's size and first 64 KiB: the same file gives the same ids wherever it lies (and overlapping
copies are deduplicated by content anyway), two different files differ.
"""

from __future__ import annotations

import functools
import hashlib
import os
import stat
from pathlib import Path

_HEAD_BYTES = 64 * 1024


def numbered_id(path: str | os.PathLike[str], number: int) -> str:
    """`capture~3fa2c1#12`: the file's stem, its digest, the record's number in it."""
    return f"{_file_tag(os.fspath(path))}#{number}"


@functools.lru_cache(maxsize=256)
def _file_tag(path: str) -> str:
    stem = Path(path).stem
    try:
        if not stat.S_ISREG(os.stat(path).st_mode):  # a FIFO or device: opening it again would block
            return stem
        with open(path, "rb") as handle:
            size = os.fstat(handle.fileno()).st_size
            head = handle.read(_HEAD_BYTES)
    except OSError:  # not a file we can read again (the reader reports its own errors)
        return stem
    digest = hashlib.blake2b(head, digest_size=3, person=b"phonehome-id")
    digest.update(size.to_bytes(8, "little"))
    return f"{stem}~{digest.hexdigest()}"
