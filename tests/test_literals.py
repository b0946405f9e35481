"""analysis.literals.literal_search against the flat longest-first regex alternation it replaces:
the same matches (leftmost, longest at that position, non-overlapping) on every text."""

from __future__ import annotations

import random
import re

from phonehome.analysis.classify.known import KnownValues
from phonehome.analysis.literals import LiteralSearch, literal_search
from phonehome.analysis.profile import Profile
from tests.support_known import SAMPLE, sample_field_values


def flat(forms) -> re.Pattern[str]:
    """The pattern classify/known.py builds today: longest form first."""
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def spans(pattern: re.Pattern[str], text: str) -> list[tuple[int, int, str]]:
    return [(m.start(), m.end(), m.group(0)) for m in pattern.finditer(text)]


def found(search: LiteralSearch | None, text: str) -> list[tuple[int, int, str]]:
    assert search is not None
    return [(start, end, text[start:end]) for start, end in search.spans(text)]


def test_same_matches_as_the_flat_alternation_on_random_forms_and_texts():
    rng = random.Random(20)
    checked = 0
    for alphabet in ("ab", "abc", "a%.+*?()[]\\|^$"):
        for _ in range(300):
            forms = {"".join(rng.choices(alphabet, k=rng.randint(1, 7))) for _ in range(rng.randint(1, 12))}
            text = "".join(rng.choices(alphabet + "\x00", k=rng.randint(0, 120)))
            expected = spans(flat(forms), text)
            assert found(literal_search(forms), text) == expected, (sorted(forms), text)
            checked += len(expected)
    assert checked > 1000, "the random cases do produce matches"


def test_same_matches_for_the_sample_profiles_known_value_forms():
    profile = Profile.load(SAMPLE / "profile.json")
    matcher = KnownValues(profile)
    values = sample_field_values()
    text = "\x00".join(values)
    total = 0
    for forms, source in ((matcher._folded, text.lower()), (matcher._exact, text)):
        assert len(forms) > 50
        expected = spans(flat(forms), source)
        assert found(literal_search(forms), source) == expected
        total += len(expected)
    # the folded forms share one search with the derived digests: their matches are still these
    folded = [(start, end) for start, end, _ in spans(flat(matcher._folded), text.lower())]
    assert matcher._lowered_matches(text.lower())[0] == folded
    assert total >= 10, "the sample's known values are found in its own traffic"


def test_long_forms_and_prefixes_compile_and_match():
    url = "https://www.example.org/" + "a/b" * 2000
    forms = [url, url[:100], url[:2500], url.upper()]
    text = "x" + url + "y" + url[:150] + "z"
    assert (
        found(literal_search(forms), text)
        == spans(flat(forms), text)
        == [(1, 1 + len(url), url), (len(url) + 2, len(url) + 102, url[:100])]
    )


def test_no_forms_no_search():
    assert literal_search([]) is None
    assert literal_search([""]) is None


def test_positions_count_characters_beyond_ascii_and_the_bmp():
    """Offsets are str indices also after multi-byte characters: emoji (outside the BMP), lone
    surrogates (undecodable bytes kept by surrogateescape), NUL (find_all's separator)."""
    rng = random.Random(17)
    alphabet = ["a", "b", "é", "€", "\U0001f600", "\udc80", "\x00", "ß"]
    checked = 0
    for _ in range(400):
        forms = {"".join(rng.choices(alphabet, k=rng.randint(1, 5))) for _ in range(rng.randint(1, 8))}
        text = "".join(rng.choices(alphabet, k=rng.randint(0, 80)))
        expected = spans(flat(forms), text)
        assert found(literal_search(forms), text) == expected, (sorted(forms), text)
        checked += len(expected)
    assert checked > 500
