"""One vocabulary of modes and label values, used by every place a label enters phonehome.

A mode arrives from a phone keyboard (`phonehome.mark/mode/Incognito%20Tab`), a command-line option,
a flow's metadata, a HAR comment or a user's file. If `Incognito`, `INCOGNITO` and `private` stayed
distinct strings, a report would compare a mode with itself and call the difference "vanishes"
(DESIGN.md "Modes and apps"). So every label is normalised here, once: trimmed, percent-decoded,
case-folded, inner whitespace and underscores made `-`, synonyms mapped to the canonical names.

Unknown modes are kept (a user may study `incognito-optout`) but reported, so a typo is seen.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass
from urllib.parse import unquote

BASELINE = "normal"
INCOGNITO = "incognito"
CANONICAL_MODES: tuple[str, ...] = (BASELINE, INCOGNITO)

# Words browsers and testers use for the same two states.
SYNONYMS: dict[str, str] = {
    "normal": BASELINE,
    "regular": BASELINE,
    "default": BASELINE,
    "standard": BASELINE,
    "public": BASELINE,
    "incognito": INCOGNITO,
    "private": INCOGNITO,
    "private-tab": INCOGNITO,
    "private-mode": INCOGNITO,
    "private-browsing": INCOGNITO,
    "privatebrowsing": INCOGNITO,
    "inprivate": INCOGNITO,
    "incognito-tab": INCOGNITO,
    "incognito-mode": INCOGNITO,
    "secret": INCOGNITO,
    "secret-mode": INCOGNITO,
    "invisible": INCOGNITO,
}

# Label values longer than this are refused: labels name things, they do not carry data.
MAX_LABEL_LENGTH = 64

_SEPARATORS = re.compile(r"[\s_]+")
_ALLOWED = re.compile(r"^[a-z0-9][a-z0-9.+-]*$")


class LabelError(ValueError):
    """A label value that cannot be used (empty, too long, or of characters a label cannot hold)."""


def clean_label(raw: object, *, what: str = "label") -> str:
    """Trim, percent-decode and Unicode-normalise a label; refuse empty, overlong or control text.

    Used for apps and phases as they are (case kept: `com.Example` is what the package is called).
    """
    if not isinstance(raw, str):
        raise LabelError(f"{what} must be text, got {type(raw).__name__}")
    text = unicodedata.normalize("NFKC", unquote(raw)).strip()
    if not text:
        raise LabelError(f"{what} is empty")
    if len(text) > MAX_LABEL_LENGTH:
        raise LabelError(f"{what} is {len(text)} characters long; at most {MAX_LABEL_LENGTH}")
    if any(unicodedata.category(ch)[0] == "C" for ch in text):
        raise LabelError(f"{what} holds control or format characters")
    return text


def normalize_mode(raw: object) -> str:
    """The canonical name of a mode: `Incognito`, ` private `, `Private%20Tab` -> `incognito`.

    Any other well-formed name is kept as it normalises (`Incognito OptOut` -> `incognito-optout`):
    whether the study expects it is `is_known_mode`'s question.
    """
    text = _SEPARATORS.sub("-", clean_label(raw, what="mode").casefold()).strip("-")
    if not _ALLOWED.match(text):
        raise LabelError(f"mode {text!r} may hold only letters, digits and . + -")
    return SYNONYMS.get(text, text)


def is_known_mode(mode: str, declared: tuple[str, ...] = ()) -> bool:
    """Canonical, or declared by the user for this study."""
    return mode in CANONICAL_MODES or mode in {normalize_mode(d) for d in declared}


@dataclass(frozen=True)
class ModeReading:
    """A normalised mode and, when it is not one the study expects, the warning to show."""

    mode: str
    warning: str | None = None


def read_mode(raw: object, declared: tuple[str, ...] = (), *, where: str = "") -> ModeReading:
    """normalize_mode plus the warning for an unknown mode (`where` says where it came from)."""
    mode = normalize_mode(raw)
    if is_known_mode(mode, declared):
        return ModeReading(mode)
    place = f" in {where}" if where else ""
    expected = ", ".join([*CANONICAL_MODES, *(normalize_mode(d) for d in declared)])
    return ModeReading(
        mode,
        f"unknown mode {mode!r}{place}: kept as its own mode (expected one of {expected}; "
        'declare study-specific modes under "modes" in the capture\'s session.json)',
    )


def comparison_pairs(modes_seen: set[str], declared: tuple[str, ...] = ()) -> list[tuple[str, str]]:
    """(baseline, other) for every other mode of the study: seen in traffic, canonical, or declared.

    A mode with no traffic still gets its pair, so that a report can say "not tested" for it rather
    than drop it (and never "vanishes").
    """
    others = {m for m in modes_seen if m != BASELINE} | {INCOGNITO}
    others |= {normalize_mode(d) for d in declared} - {BASELINE}
    return [(BASELINE, other) for other in sorted(others, key=lambda m: (m != INCOGNITO, m))]
