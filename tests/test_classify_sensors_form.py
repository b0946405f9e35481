"""sensors.form_fields, the Sensors batch's form read with its base64 unquoted by str.replace
(issue 20), is dict(parse_qsl(text, keep_blank_values=True)) on every text, and the shorter
int() blocks of java_string_hash give the same hashes."""

from __future__ import annotations

import random
from urllib.parse import parse_qsl, quote

from phonehome.analysis.classify import sensors
from phonehome.analysis.classify.sensors import form_fields, java_string_hash

EDGES = [
    "", "&", "&&", "=", "a", "a=", "=b", "a=b=c", "a=1&a=2", "data_list=QQ%3D%3D", "data_list=QQ%3d%3D",
    "data_list=%2B%2F%3D", "data_list=%%2B", "data_list=%2", "data_list=%", "data_list=%2Bx%41",
    "data%5Flist=Zm9v%2B", "crc=1&gzip=1&data_list=a+b%2Bc", "x=%C3%A9%2B", "x=\ufffd%2B", "x=%E9%2B",
    "a+b=c+d", "data_list=%252B", "data_list=%2B2B",
]  # fmt: skip


def _random_forms(count: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    pieces = ["%2B", "%2F", "%3D", "%2b", "%3d", "%", "%2", "%41", "%C3%A9", "%E9", "+", "&", "=",
              "data_list", "crc", "gzip", "Zm9v", "QQ", "2B", "é", "\ufffd", "x"]  # fmt: skip
    return ["".join(rng.choice(pieces) for _ in range(rng.randrange(0, 16))) for _ in range(count)]


def test_form_fields_is_parse_qsl():
    texts = EDGES + _random_forms(30000, seed=20)
    fast = 0
    for text in texts:
        assert form_fields(text) == dict(parse_qsl(text, keep_blank_values=True)), text
        fast += "%" in text and all(
            value.count("%") == value.count("%2B") + value.count("%2F") + value.count("%3D")
            for value in (pair.partition("=")[2] for pair in text.split("&"))
        )
    assert fast > 1000, "many texts take the str.replace path"


def test_a_real_shaped_batch_reads_as_parse_qsl():
    rng = random.Random(5)
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    data = "".join(rng.choice(alphabet) for _ in range(5000)) + "=="
    body = f"crc={java_string_hash(data)}&gzip=1&data_list={quote(data, safe='')}"
    assert form_fields(body) == dict(parse_qsl(body, keep_blank_values=True))
    assert form_fields(body)["data_list"] == data


def test_java_string_hash_blocks_do_not_change_the_hash(monkeypatch):
    rng = random.Random(7)
    texts = ["", "a", "hello", "x" * 191, "x" * 192, "x" * 193, "x" * 1000]
    texts += ["".join(rng.choice("abcXYZ019+/=") for _ in range(rng.randrange(0, 3000))) for _ in range(50)]
    shipped = [java_string_hash(text) for text in texts]
    for block in (1, 7, 640):
        monkeypatch.setattr(sensors, "_DIGIT_BLOCK", block)
        monkeypatch.setattr(sensors, "_DIGIT_SHIFT", pow(31, block, 1 << 32))
        assert [java_string_hash(text) for text in texts] == shipped
    # Java's own: "hello".hashCode() == 99162322, "Aa".hashCode() == "BB".hashCode() == 2112
    assert shipped[2] == 99162322 and java_string_hash("Aa") == java_string_hash("BB") == 2112
