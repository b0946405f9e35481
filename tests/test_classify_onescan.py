"""Known-value matching with one search of the lowered text (issue 20) finds what the two searches
it replaced found.

KnownValues used to search a text twice: its lowered copy for the case-insensitive forms and
digests, the text itself for the case-sensitive base64 forms. Now the lowered base64 forms join
the one search of the lowered text and a candidate counts where the original text holds the form.
These tests compare that with the case-sensitive search itself: a longest-first regex alternation
of the base64 forms over the original text (what literals.LiteralSearch stands for), on random
texts made of the forms (whole, cut, with their case changed) and noise, on texts whose lower()
is longer (the fallback), and on the sample capture's own traffic.
"""

from __future__ import annotations

import random
import re

from phonehome.analysis.classify.known import KnownValues, _counts_in_run
from phonehome.analysis.profile import Profile
from tests.support_known import PHONE_VALUES, SAMPLE, sample_field_values


def _alternation(forms) -> re.Pattern[str]:
    return re.compile("|".join(re.escape(f) for f in sorted(forms, key=len, reverse=True)))


def _matcher() -> KnownValues:
    return KnownValues(Profile(values={**PHONE_VALUES, "serial": "R58M12ABCDE"}))


def _texts(matcher: KnownValues, count: int, seed: int) -> list[str]:
    """Random texts of the matcher's forms, base64 ones above all: as they are, with their case
    swapped or lowered (the lowered search finds those too; they must not count), cut, and noise;
    some with `İ`, whose lower() is two characters."""
    exact = list(matcher._exact)
    others = list(matcher._folded) + list(matcher._hex)
    rng = random.Random(seed)
    noise = "0123456789abcdefABCDEFxyzXYZ+/=_-:.@ %"
    texts = []
    for _ in range(count):
        parts = []
        for _ in range(rng.randrange(0, 6)):
            choice = rng.random()
            form = rng.choice(exact if rng.random() < 0.7 else others)
            if choice < 0.3:
                parts.append(form)
            elif choice < 0.45:
                parts.append(form.swapcase())
            elif choice < 0.55:
                parts.append(form.lower())
            elif choice < 0.7:
                parts.append(form[rng.randrange(0, len(form)) :])
            else:
                parts.append("".join(rng.choice(noise) for _ in range(rng.randrange(0, 30))))
            if rng.random() < 0.03:
                parts.append("İ")
        texts.append("".join(parts))
    return texts


def test_base64_forms_are_found_as_the_case_sensitive_search_finds_them():
    matcher = _matcher()
    alternation = _alternation(matcher._exact)
    texts = _texts(matcher, 4000, seed=20)
    found = fallback = changed_case = 0
    for text in texts:
        expected = [match.span() for match in alternation.finditer(text)]
        assert matcher._scan(text, text.lower())[1] == expected, text
        found += len(expected)
        fallback += len(text.lower()) != len(text)
        changed_case += any(form.lower() in text.lower() for form in matcher._exact) and not expected
    assert found > 1000, "the texts do contain base64 forms"
    assert fallback > 50, "some texts take the fallback (lower() longer than the text)"
    assert changed_case > 100, "some texts hold a form only in another case, which must not count"


def _every_digest(matcher: KnownValues, lowered: str) -> list[tuple[int, str, str, str]]:
    """Every occurrence of every derived digest in `lowered`, by str.find, where it counts."""
    out = []
    for form, (keys, how) in matcher._hex.items():
        start = lowered.find(form)
        while start >= 0:
            if _counts_in_run(lowered, start, start + len(form)):
                out.append((start, form, keys, how))
            start = lowered.find(form, start + 1)
    return sorted(out, key=lambda digest: (digest[0], len(digest[1])))


def test_the_folded_forms_and_digests_are_unchanged_by_the_shared_search():
    """The folded forms still match as their own alternation over the lowered text, and the
    digests are every occurrence that counts, whatever base64 candidates share the search."""
    matcher = _matcher()
    folded = _alternation(matcher._folded)
    found = 0
    for text in _texts(matcher, 3000, seed=21):
        lowered = text.lower()
        scanned = matcher._scan(text, lowered)
        assert scanned[0] == [match.span() for match in folded.finditer(lowered)], text
        assert scanned[2] == _every_digest(matcher, lowered), text
        found += len(scanned[0]) + len(scanned[2])
    assert found > 500


def test_find_each_is_find_of_each_value_and_leaves_out_the_empty_ones():
    matcher = _matcher()
    texts = _texts(matcher, 3000, seed=22)
    found = 0
    for start in range(0, len(texts), 25):
        chunk = texts[start : start + 25]
        expected = {index: matcher.find(text) for index, text in enumerate(chunk) if matcher.find(text)}
        assert matcher.find_each(chunk) == expected
        assert matcher.find_all(chunk) == [expected.get(index, []) for index in range(len(chunk))]
        found += len(expected)
    assert found > 1000
    assert matcher.find_each([]) == {} and matcher.find_all([]) == []


def test_the_sample_traffic_matches_as_with_two_searches():
    """On the sample capture's decoded fields, joined as classify_request joins them: the base64
    forms of its profile are found where their case-sensitive alternation finds them."""
    matcher = KnownValues(Profile.load(SAMPLE / "profile.json"))
    values = sample_field_values()
    text = "\x00".join(values)
    expected = [match.span() for match in _alternation(matcher._exact).finditer(text)]
    assert matcher._scan(text, text.lower())[1] == expected
    assert sum(map(len, matcher.find_each(values).values())) >= 10
