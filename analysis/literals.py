"""Many literal strings searched at once, with the matches a longest-first regex alternation gives.

Why: known-value matching (classify/known.py) looks for every form of every profile value
(plain, hex, URL-encoded, base64, md5/sha1/sha256 digests: about 250 strings for one phone) in
every decoded field. Python's `re` has no multi-literal search: a flat alternation
`form1|form2|...` tries its branches one after the other at every position, and even shaped as
a trie (issue 17) it is entered at almost every character of mixed-case text, because nearly
every position starts some base64 form. An Aho–Corasick automaton (pyahocorasick, C) reads each
character once whatever the number of forms. On the 5,000-request varied session of
benchmarks/bench_peer.py the case-sensitive scan took 0.30 s with the trie-shaped regex and
0.09 s with the automaton, the case-folded one 0.10 s and 0.05 s; `find_all` 0.57 s and 0.29 s.

Same matches: the automaton reports every occurrence, overlapping ones too. `spans` keeps what
`re.finditer` of the longest-first alternation keeps: scanning left to right, the longest form
that starts at the leftmost position, then the search resumes after it. tests/test_literals.py
checks this against the flat alternation itself.
"""

from __future__ import annotations

from collections.abc import Iterable

import ahocorasick


class LiteralSearch:
    """A compiled search for a fixed, non-empty set of non-empty literal strings."""

    __slots__ = ("_automaton",)

    def __init__(self, forms: Iterable[str]) -> None:
        automaton = ahocorasick.Automaton()
        for form in forms:
            if not form:
                raise ValueError("an empty form matches everywhere")
            automaton.add_word(form, len(form))
        if not len(automaton):
            raise ValueError("no forms to search for")
        automaton.make_automaton()
        self._automaton = automaton

    def occurrences(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of every occurrence of every form, overlapping ones too, ordered by start
        and, at one start, longest first."""
        # the automaton reports (index of the last character, length)
        return [
            (start, start - negative)
            for start, negative in sorted((last + 1 - n, -n) for last, n in self._automaton.iter(text))
        ]

    def spans(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of the matches `re.finditer` of `|`.join(longest-first forms) finds."""
        return leftmost_longest(self.occurrences(text))


def leftmost_longest(occurrences: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """What `re.finditer` of a longest-first alternation keeps of `occurrences` (ordered as
    LiteralSearch.occurrences gives them): the longest at the leftmost start, then resume after it."""
    out = []
    resume = 0
    for start, end in occurrences:
        if start >= resume:
            resume = end
            out.append((start, end))
    return out


def literal_search(forms: Iterable[str]) -> LiteralSearch | None:
    """The search for `forms`, or None when there is no non-empty form."""
    nonempty = [form for form in forms if form]
    return LiteralSearch(nonempty) if nonempty else None
