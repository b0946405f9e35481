"""One regular expression for many literal strings, shaped as a trie: fast to scan, same matches.

Why: known-value matching (classify/known.py) looks for every form of every profile value
(plain, hex, URL-encoded, base64, md5/sha1/sha256 digests: about 250 strings for one phone) in
every decoded field, with one regex `form1|form2|...` (longest first). Python's `re` has no
multi-literal search: at each position of the text it tries the alternatives one after the
other, so scanning costs about (text length x number of forms). A trie-shaped pattern
(`(?:a(?:bc|x)|b...)`) rejects a position after one character test against a few branches.
On the 5,000-request varied session of benchmarks/bench_peer.py `find_all` took 1.50 s of CPU
with the flat alternation and 0.63 s with this pattern, with identical matches.

Same matches: at a given position the flat alternation, sorted longest first, takes the
longest form that matches there; the trie prefers going deeper over ending at a shorter form
(each optional end is `(?:...)?`, greedy), so it takes the same longest form, and `finditer`
resumes at the same place. tests/test_literals.py checks this against the flat alternation.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

_END = ""  # marks, in a trie node, that a form ends here (forms are non-empty)


def _pattern(node: dict[str, dict]) -> str:
    """The pattern below `node`. Runs of single-child nodes are walked in a loop and written as
    plain characters, so neither this recursion nor the regex's group nesting grows with the
    length of a form (a long URL), only with the branch points along it."""
    branches = []
    for char, child in sorted(node.items()):
        if char == _END:
            continue
        run = [re.escape(char)]
        while len(child) == 1 and _END not in child:
            ((char, child),) = child.items()
            run.append(re.escape(char))
        branches.append("".join(run) + _pattern(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else "(?:" + "|".join(branches) + ")"
    return f"(?:{body})?" if _END in node else body


def literal_pattern(forms: Iterable[str], flags: int = 0) -> re.Pattern[str] | None:
    """A compiled pattern matching exactly what `|`.join(longest-first escaped forms) matches.

    None when there is no non-empty form. The pattern nests one group per branch point or
    shorter form along a path, not per character.
    """
    trie: dict[str, dict] = {}
    for form in forms:
        if not form:
            continue
        node = trie
        for char in form:
            node = node.setdefault(char, {})
        node[_END] = {}
    if not trie:
        return None
    return re.compile(_pattern(trie), flags)
