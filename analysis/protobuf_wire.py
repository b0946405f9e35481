"""A cheap, exact-enough test that bytes *can* be one protobuf message: the top-level framing.

Why: the decoder offers every binary value it meets (a body, a base64- or hex-decoded field) to
the schema-less protobuf parser (blackboxprotobuf), which builds Python objects as it goes and
raises somewhere in the middle when the bytes are not protobuf. On the 5,000-request varied
session of benchmarks/bench_peer.py it was called 40,041 times and succeeded 725 times; those
calls cost 0.32 s of CPU. Walking the top-level framing alone (tag varints, wire types,
lengths) without building anything rejects 33,127 of them in 0.04 s, and the parser is left
with 6,914 (0.09 s).

`framing_ok` is a necessary condition for `blackboxprotobuf.decode_message` to accept the whole
buffer, never a stricter one: it rejects only bytes whose framing is impossible (a varint or a
field running past the end or longer than 10 bytes, wire types 6 and 7, bytes left over) or that
the parser refuses at the top level whatever follows: groups (wire types 3 and 4), which bbpb 1.4
does not support ("GROUP wire types not supported", raised while it splits the top-level fields).
Of the 6,914 buffers the parser still got on that session, 6,146 were refused for a group: they
now stop here. The parser then applies its own stricter checks (canonical varints, one wire type
per field number, nested messages). tests/test_protobuf_wire.py checks "parser accepts =>
framing_ok" on real captures' values and on random bytes; tests/test_decode_prechecks.py checks
that the parser refuses every top-level group.

Most tags and lengths are one byte (field numbers up to 15, fields under 128 bytes), so the loop
reads those inline and calls _varint_end only for longer varints.
"""

from __future__ import annotations

#: Wire types no top-level field can have: groups (3, 4; unsupported by the parser), 6, 7.
_IMPOSSIBLE = frozenset({3, 4, 6, 7})


def _varint_end(data: bytes, i: int, n: int) -> int:
    """Index after the varint starting at i, or -1 if it runs past the end or over 10 bytes."""
    stop = i + 10
    if stop > n:
        stop = n
    while i < stop:  # a while loop: no range object, no min() call (a third of the time on noise)
        if data[i] < 0x80:
            return i + 1
        i += 1
    return -1


def framing_ok(data: bytes) -> bool:
    """False only when `data` cannot be exactly one protobuf message (see the module doc)."""
    i, n = 0, len(data)
    while i < n:
        tag = data[i]
        wire_type = tag & 7  # the low 3 bits of the tag varint's first byte
        if wire_type in _IMPOSSIBLE:
            return False
        if tag < 0x80:  # one-byte tags (field numbers up to 15) are the rule: no call
            i += 1
        else:
            i = _varint_end(data, i, n)
            if i < 0:
                return False
        if wire_type == 2:
            if i < n and data[i] < 0x80:  # a one-byte length (under 128 bytes)
                i += 1 + data[i]
                continue
            j = _varint_end(data, i, n)
            if j < 0:
                return False
            length = 0
            for shift, byte in enumerate(data[i:j]):
                length |= (byte & 0x7F) << (7 * shift)
            i = j + length
        elif wire_type == 0:
            if i < n and data[i] < 0x80:
                i += 1
                continue
            i = _varint_end(data, i, n)
            if i < 0:
                return False
        elif wire_type == 1:
            i += 8
        else:  # 5
            i += 4
    return i == n
