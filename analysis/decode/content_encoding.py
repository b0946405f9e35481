"""Undoing a request body's Content-Encoding: one loop, for the decoder and for deduplication.

The decoder undoes it to find the fields (and records the chain in `encodings`); deduplication
undoes it to compare one request seen in a dump (compressed as sent) and in a HAR (whose reader
compressed the decoded text again, at another level). Both must agree on which tokens count,
in which order, and when to give up, so both use this.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from phonehome.analysis.decode.codecs import CONTENT_CODINGS, Inflated
from phonehome.analysis.records import content_codings

#: Undo one compression (`gzip`, `deflate`, `brotli`, `zstd`) on bytes, bounded; None if not that.
Inflate = Callable[[str, bytes], Inflated | None]


@dataclass(frozen=True, slots=True)
class Undone:
    """A body with as much of its Content-Encoding undone as could be.

    `chain`: our names of the layers undone, outermost first. `problem`: why undoing stopped
    early (an unknown token, or a layer that did not decode), None when every layer was undone.
    `failed`: the stop was a layer that did not decode (not an unknown token). `complete`: every
    layer undone, none cut short by a bound or a truncated stream.
    """

    body: bytes
    chain: tuple[str, ...] = ()
    problem: str | None = None
    failed: bool = False
    complete: bool = True


def undo_content_encoding(body: bytes, header: str | None, inflate: Inflate) -> Undone:
    """Undo the codings named by a Content-Encoding `header` on `body`, last applied first."""
    chain: tuple[str, ...] = ()
    complete = True
    for coding in content_codings(header):
        name = CONTENT_CODINGS.get(coding)
        if name is None:
            return Undone(body, chain, f"unknown Content-Encoding {coding!r}", complete=False)
        inflated = inflate(name, body)
        if inflated is None:
            return Undone(body, chain, f"Content-Encoding {coding} did not decode", True, False)
        body = inflated.data
        chain = (*chain, name)
        complete = complete and inflated.complete and not inflated.truncated
    return Undone(body, chain, complete=complete)
