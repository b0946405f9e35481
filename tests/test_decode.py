"""phonehome.analysis.decode: locations, paths, keys and encoding chains, one layer at a time."""

from __future__ import annotations

import base64
import gzip
import json
import zlib

import brotli
import msgpack
import pytest
import zstandard

from phonehome.analysis.decode import DEFAULT_LIMITS, Field, Limits, decode_request, decode_value, join_path
from tests.support_decode import pb_string, record


def by_path(decoded) -> dict[str, Field]:
    return {f.path: f for f in decoded.fields}


def test_url_path_segments_query_and_plain_headers():
    rec = record(
        "/track/v4/3f9a2c41b7d05e18/event?project=mini&q=flu+symptoms&empty=",
        headers={"User-Agent": "Mozilla/5.0 (Linux; Android 10)", "X-Device": "abc", "Accept": "*/*"},
    )
    fields = by_path(decode_request(rec))
    assert fields["url_path[2]"] == Field("url_path", "url_path[2]", "", (), "3f9a2c41b7d05e18")
    assert fields["query.q"] == Field("query", "query.q", "q", (), "flu symptoms")
    assert fields["query.empty"].value == ""
    assert fields["header.user-agent"].value == "Mozilla/5.0 (Linux; Android 10)"
    assert fields["header.x-device"].key == "x-device"
    assert "header.accept" not in fields


def test_url_path_with_leading_double_slash_or_bracket_keeps_every_segment():
    # urlsplit reads "//api/..." as a host "api", and refuses "//[..." as a bad IPv6 host
    fields = by_path(decode_request(record("//api/v1/3f9a2c41b7d05e18?imei=867530912345673")))
    assert [fields[f"url_path[{i}]"].value for i in range(3)] == ["api", "v1", "3f9a2c41b7d05e18"]
    decoded = decode_request(record("//[v1/3f9a2c41b7d05e18?imei=867530912345673"))
    assert decoded.notes == [] and not decoded.truncated
    fields = by_path(decoded)
    assert fields["url_path[1]"].value == "3f9a2c41b7d05e18"
    assert fields["query.imei"].value == "867530912345673"


def test_sensors_analytics_batch_form_base64_gzip_json():
    batch = [{"distinct_id": "d-1", "properties": {"$url": "https://e.org/a?b=1", "search_word": "flu"}}] * 3
    data = base64.b64encode(gzip.compress(json.dumps(batch).encode())).decode()
    body = f"data_list={data.replace('+', '%2B').replace('/', '%2F').replace('=', '%3D')}&gzip=1&crc=42"
    rec = record("/sa", headers={"Content-Type": "application/x-www-form-urlencoded"}, body=body.encode())
    fields = by_path(decode_request(rec))
    url = fields["body.data_list[2].properties.$url"]
    assert url.value == "https://e.org/a?b=1"
    assert url.key == "$url"
    assert url.encodings == ("form", "base64", "gzip", "json")
    assert url.location == "body"
    assert fields["body.data_list[0].properties.search_word"].value == "flu"
    assert fields["body.gzip"].encodings == ("form",)
    assert not any(f.value == data for f in fields.values()), "the base64 text itself is not a leaf"


def test_raw_plus_in_base64_survives_query_decoding():
    # apps often forget to percent-encode '+': the query layer turns it into ' '
    payload = json.dumps({"url": "https://x.org/" + "?" * 40}).encode()
    b64 = base64.b64encode(payload).decode()
    assert "+" in b64 or "/" in b64
    fields = by_path(decode_request(record("/c?d=" + b64.replace("=", "%3D"))))
    assert fields["query.d.url"].value.startswith("https://x.org/")
    assert fields["query.d.url"].encodings == ("base64", "json")


def test_json_body_with_embedded_json_string_and_list_keys():
    inner = json.dumps({"page": "https://a.example/x", "tags": ["a", "b"]})
    body = json.dumps({"events": [{"payload": inner, "n": 1.5, "ok": True, "none": None}]}).encode()
    rec = record("/e", headers={"Content-Type": "application/json; charset=utf-8"}, body=body)
    fields = by_path(decode_request(rec))
    assert fields["body.events[0].payload.page"].encodings == ("json", "json")
    assert fields["body.events[0].payload.tags[1]"].key == "tags"
    assert fields["body.events[0].n"].value == "1.5"
    assert fields["body.events[0].ok"].value == "true"
    assert "body.events[0].none" not in fields


def test_keys_with_dots_and_brackets_are_quoted():
    body = json.dumps({"a.b": {"c[0]": "v1"}, "": "v2", "sp ace": "v3"}).encode()
    fields = by_path(decode_request(record(body=body, headers={"content-type": "application/json"})))
    assert fields['body["a.b"]["c[0]"]'].value == "v1"
    assert fields['body["a.b"]["c[0]"]'].key == "c[0]"
    assert fields['body[""]'].value == "v2"
    assert fields['body["sp ace"]'].value == "v3"
    assert join_path("x", "plain_$key") == "x.plain_$key"


@pytest.mark.parametrize(
    ("coding", "name"), [("gzip", "gzip"), ("deflate", "deflate"), ("br", "brotli"), ("zstd", "zstd")]
)
def test_content_encoding_is_the_first_chain_element(coding, name):
    raw = json.dumps({"imei": "867530912345673"}).encode()
    compress = {
        "gzip": gzip.compress,
        "deflate": zlib.compress,
        "br": brotli.compress,
        "zstd": zstandard.ZstdCompressor().compress,
    }[coding]
    rec = record(headers={"Content-Encoding": coding, "Content-Type": "application/json"}, body=compress(raw))
    f = by_path(decode_request(rec))["body.imei"]
    assert f.value == "867530912345673"
    assert f.encodings == (name, "json")


def test_raw_deflate_and_stacked_content_encodings():
    raw = b'{"k":"value-123"}'
    c = zlib.compressobj(wbits=-15)
    deflated = c.compress(raw) + c.flush()
    f = by_path(decode_request(record(headers={"Content-Encoding": "deflate"}, body=deflated)))["body.k"]
    assert f.encodings == ("deflate", "json")
    stacked = brotli.compress(gzip.compress(raw))
    f = by_path(decode_request(record(headers={"Content-Encoding": "gzip, br"}, body=stacked)))["body.k"]
    assert f.encodings == ("brotli", "gzip", "json")


def test_compression_by_magic_only():
    raw = b'{"k":"value-123"}'
    for comp, name in (
        (gzip.compress, "gzip"),
        (zlib.compress, "zlib"),
        (zstandard.ZstdCompressor().compress, "zstd"),
    ):
        f = by_path(decode_request(record(body=comp(raw))))["body.k"]
        assert f.encodings == (name, "json")


def test_wrong_content_encoding_is_noted_and_body_kept():
    d = decode_request(record(headers={"Content-Encoding": "gzip"}, body=b'{"k":"v-plain"}'))
    assert by_path(d)["body.k"].encodings == ("json",)
    assert any("did not decode" in n for n in d.notes)


def test_multipart_parts_are_fields():
    boundary = "XyZ"
    gz = gzip.compress(b'{"url":"https://m.example/p"}')
    body = (
        (
            f'--{boundary}\r\nContent-Disposition: form-data; name="user"\r\n\r\nalice@example.com\r\n'
            f'--{boundary}\r\nContent-Disposition: form-data; name="log"; filename="l.gz"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n"
        ).encode()
        + gz
        + f"\r\n--{boundary}--\r\n".encode()
    )
    rec = record(headers={"Content-Type": f"multipart/form-data; boundary={boundary}"}, body=body)
    fields = by_path(decode_request(rec))
    assert fields["body.user"] == Field("body", "body.user", "user", ("multipart",), "alice@example.com")
    assert fields["body.log.url"].encodings == ("multipart", "gzip", "json")


def test_cookies_and_bearer_jwt():
    def b64(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    jwt = f"{b64({'alg': 'HS256'})}.{b64({'sub': 'user-8812', 'device': 'abc'})}.sig_nature"
    rec = record(
        headers={"Authorization": f"Bearer {jwt}", "Cookie": 'uid=user-8812; imei="867530912345673"; flag'}
    )
    fields = by_path(decode_request(rec))
    assert fields["header.authorization"].value == jwt  # the token itself is a credential
    claim = fields["header.authorization.jwt_payload.sub"]
    assert (claim.value, claim.key, claim.encodings) == ("user-8812", "sub", ("jwt", "json"))
    assert fields["header.authorization.jwt_header.alg"].value == "HS256"
    assert fields["cookie.uid"] == Field("cookie", "cookie.uid", "uid", (), "user-8812")
    assert fields["cookie.imei"].value == "867530912345673"
    assert fields["cookie.flag"].value == ""


def test_basic_auth_is_decoded():
    token = base64.b64encode(b"user:secret").decode()
    f = by_path(decode_request(record(headers={"Authorization": f"Basic {token}"})))["header.authorization"]
    assert (f.value, f.encodings) == ("user:secret", ("base64",))


def test_hex_and_urlsafe_base64_and_nested_query_string():
    hexed = json.dumps({"ip": "192.168.1.23"}).encode().hex()
    pad = 0
    while True:  # URL-safe base64 is only recognisable as such when it uses '-' or '_'
        blob = zlib.compress(b'{"gaid":"a3c5e2f1"}' + b" " * pad)
        urlsafe = base64.urlsafe_b64encode(blob).rstrip(b"=").decode()
        if "-" in urlsafe or "_" in urlsafe:
            break
        pad += 1
    nested = "a%3D1%26url%3Dhttps%253A%252F%252Fz.example%252F"
    twice = "https%253A%252F%252Fy.example%252F"  # percent-encoded beyond what the query layer undoes
    fields = by_path(decode_request(record(f"/m?v={hexed}&d={urlsafe}&n={nested}&t={twice}")))
    assert fields["query.v.ip"].encodings == ("hex", "json")
    assert fields["query.d.gaid"].encodings == ("base64url", "zlib", "json")
    assert fields["query.n.url"].value == "https://z.example/"
    assert fields["query.n.url"].encodings == ("form",)
    assert fields["query.t"].value == "https://y.example/"
    assert fields["query.t"].encodings == ("urlencoded",)


def test_protobuf_body_field_numbers_as_path():
    msg = pb_string(1, pb_string(1, b"screen_view") + b"\x20\x96\x01") + pb_string(19, b"a3c5e2f1-7b9d")
    rec = record(headers={"Content-Type": "application/x-protobuf"}, body=msg)
    fields = by_path(decode_request(rec))
    assert fields["body.1.1"] == Field("body", "body.1.1", "1", ("protobuf",), "screen_view")
    assert fields["body.1.4"].value == "150"
    assert fields["body.19"].value == "a3c5e2f1-7b9d"


def test_protobuf_and_msgpack_sniffed_without_content_type():
    msg = pb_string(2, b"com.example.app") + pb_string(3, b"another string")
    assert by_path(decode_request(record(body=msg)))["body.2"].encodings == ("protobuf",)
    packed = msgpack.packb({"oaid": "b1c2d3", "lat": 48.85, "raw": b"\x00\x01"})
    fields = by_path(decode_request(record(body=zstandard.ZstdCompressor().compress(packed))))
    assert fields["body.oaid"].encodings == ("zstd", "msgpack")
    assert fields["body.lat"].value == "48.85"
    assert fields["body.raw"].value == "\\x00\\x01"


def test_base64_protobuf_inside_json():
    msg = pb_string(1, b"hello world") + pb_string(2, b"https://p.example/")
    body = json.dumps({"blob": base64.b64encode(msg).decode()}).encode()
    f = by_path(decode_request(record(body=body)))["body.blob.2"]
    assert (f.value, f.encodings) == ("https://p.example/", ("json", "base64", "protobuf"))


@pytest.mark.parametrize(
    "plain",
    [
        "deadbeef",
        "deadbeefcafebabe",
        "android",
        "1234",
        "12345678901234567890",
        "3f9a2c41b7d05e18",  # an Android ID (hex)
        "8d7628fe49d8e3822217d9a6a78a3734",  # an md5
        "5d3b8f0e-2c7a-4e91-b6d4-0a9f8e7c6b5a",  # a UUID
        "global_browser_mini",
        "com.mi.globalbrowser.mini",
        "Politics",
        "SGVsbG8",  # base64 of "Hello" but too short and unpadded to be believed
        "abcdefghijklmnop",
        "ZmFrZQ",
        "en_US",
        "M2007J20CG",
        "AAAAAAAAAAAAAAAAAAAA",
        "https://www.example.org/a?b=c%3Dd",
        "Mozilla/5.0 (Linux; U; Android 10; en-gb; M2007J20CG Build/QKQ1.200512.002)",
    ],
)
def test_plain_values_are_not_reinterpreted(plain):
    fields = decode_value(plain, location="query", path="query.x", key="x").fields
    assert fields == [Field("query", "query.x", "x", (), plain)]


def test_padded_base64_text_is_decoded_but_random_ids_are_not():
    fields = decode_value(base64.b64encode(b"search words here").decode(), path="q").fields
    assert [(f.value, f.encodings) for f in fields] == [("search words here", ("base64",))]
    # 200 random URL-safe tokens (session ids): none may be mistaken for an encoding
    import random

    rng = random.Random(7)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
    for _ in range(200):
        token = "".join(rng.choice(alphabet) for _ in range(rng.randrange(8, 48)))
        fields = decode_value(token, path="q").fields
        assert [f.encodings for f in fields] == [()], token


def test_binary_leaf_keeps_ascii_searchable():
    body = b"\x00\x01\xffIMEI=867530912345673\xfe"
    fields = decode_request(record(headers={"Content-Type": "application/octet-stream"}, body=body)).fields
    assert any("867530912345673" in f.value for f in fields)


def test_gzip_bomb_is_bounded_and_truncated():
    bomb = gzip.compress(b"\0" * (8 << 20))
    limits = Limits(max_decompressed_bytes=1 << 20)
    d = decode_request(record("/p?a=1", headers={"Content-Encoding": "gzip"}, body=bomb), limits)
    assert d.truncated
    assert any("max_decompressed_bytes" in n for n in d.notes)
    assert by_path(d)["query.a"].value == "1", "fields decoded before the bound are kept"
    # binary leaves show each byte as at most 4 characters (`\\x00`)
    assert sum(len(f.value) for f in d.fields) <= 4 * (1 << 20) + 64


def test_field_limit_keeps_the_first_fields():
    body = json.dumps({f"k{i}": i for i in range(500)}).encode()
    d = decode_request(record(body=body), Limits(max_fields=50))
    assert d.truncated and len(d.fields) == 50
    assert d.fields[-1].path == "body.k49" or d.fields[0].location == "url_path"


def test_depth_and_nesting_limits():
    value = "https://deep.example/"
    for _ in range(20):
        value = json.dumps({"x": value})
    d = decode_value(value, path="q", limits=Limits(max_depth=5))
    assert d.truncated and any("max_depth" in n for n in d.notes)
    deep = "[" * 5000 + "]" * 5000
    d = decode_request(record(body=deep.encode()))
    assert len(d.fields) == 1  # too deep for the JSON parser: kept as a text leaf
    nested = {"a": "leaf-value"}
    for _ in range(100):
        nested = {"n": nested}
    d = decode_request(record(body=json.dumps(nested).encode()), Limits(max_nesting=30))
    assert d.truncated and any("max_nesting" in n for n in d.notes)


def test_default_limits_are_exported():
    assert DEFAULT_LIMITS.max_depth >= 8
    assert DEFAULT_LIMITS.max_decompressed_bytes >= 1 << 20


def test_grpc_frames_and_bom_prefixed_json():
    m1 = pb_string(1, b"first message")
    m2 = gzip.compress(pb_string(2, b"second message"))
    body = b"\x00" + len(m1).to_bytes(4, "big") + m1 + b"\x01" + len(m2).to_bytes(4, "big") + m2
    rec = record(headers={"Content-Type": "application/grpc", "grpc-encoding": "gzip"}, body=body)
    fields = by_path(decode_request(rec))
    assert fields["body[0].1"].value == "first message"
    assert fields["body[1].2"].encodings == ("gzip", "protobuf")
    f = by_path(decode_request(record(body='\ufeff{"k": "bom-json"}'.encode())))["body.k"]
    assert f.encodings == ("json",)


def test_cut_streams_count_at_body_level_but_not_inside_base64():
    words = [f"word{i * 7919 % 10007}" for i in range(2000)]  # compresses poorly enough to cut
    gz = gzip.compress(json.dumps({"k": words}).encode())
    cut = gz[: len(gz) // 2]
    body_fields = decode_request(record(body=cut)).fields
    assert body_fields[-1].encodings == ("gzip",), "a body cut in transit still shows its prefix"
    token = base64.b64encode(cut).decode()
    assert decode_value(token, path="q").fields[0].encodings == ()


def test_multipart_by_the_mime_parser_keeps_binary_and_transfer_encodings():
    # issue 15: parts read by email.parser, not by hand: CRLF inside binary content survives,
    # Content-Transfer-Encoding is undone, RFC 2231 names are read
    body = (
        b'--xyz\r\nContent-Disposition: form-data; name="bin"\r\n'
        b"Content-Type: application/octet-stream\r\n\r\n"
        b"\x00\x01\r\n\x02\r\n--xyz\r\n"
        b'Content-Disposition: form-data; name="b64"\r\nContent-Transfer-Encoding: base64\r\n\r\n'
        + base64.b64encode(b'{"imei": "867530912345673"}')
        + b"\r\n--xyz\r\nContent-Disposition: form-data; name*=UTF-8''caf%C3%A9\r\n\r\nlatte\r\n--xyz--\r\n"
    )
    rec = record(headers={"Content-Type": 'multipart/form-data; boundary="xyz"'}, body=body)
    fields = by_path(decode_request(rec))
    assert fields["body.bin"].value == "\\x00\\x01\r\n\\x02"
    assert fields["body.b64.imei"].value == "867530912345673"
    assert fields["body.café"].value == "latte"
