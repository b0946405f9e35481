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
field running past the end or longer than 10 bytes, wire types 6 and 7, bytes left over) and
defers to the parser on anything it does not model (groups, wire types 3 and 4). The parser
then applies its own stricter checks (canonical varints, nested messages). tests/test_protobuf_wire.py
checks "parser accepts => framing_ok" on real captures' values and on random bytes.
"""

from __future__ import annotations


def _varint_end(data: bytes, i: int, n: int) -> int:
    """Index after the varint starting at i, or -1 if it runs past the end or over 10 bytes."""
    for j in range(i, min(n, i + 10)):
        if data[j] < 0x80:
            return j + 1
    return -1


def framing_ok(data: bytes) -> bool:
    """False only when `data` cannot be exactly one protobuf message (see the module doc)."""
    i, n = 0, len(data)
    while i < n:
        j = _varint_end(data, i, n)
        if j < 0:
            return False
        wire_type = data[i] & 7  # the low 3 bits of the tag varint's first byte
        i = j
        if wire_type == 0:
            i = _varint_end(data, i, n)
            if i < 0:
                return False
        elif wire_type == 1:
            i += 8
        elif wire_type == 5:
            i += 4
        elif wire_type == 2:
            j = _varint_end(data, i, n)
            if j < 0:
                return False
            length = 0
            for shift, byte in enumerate(data[i:j]):
                length |= (byte & 0x7F) << (7 * shift)
            i = j + length
        else:  # groups (3, 4) are left to the parser; 6 and 7 do not exist
            return wire_type in (3, 4)
    return i == n
