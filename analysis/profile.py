"""The device profile (DESIGN.md "Device profile"): the test phone's own identifiers and test inputs.

Knowing them lets the classifier find them under any encoding with high confidence. A profile that
is silently wrong is worse than none: `"urls": "https://x"` (a string, not a list) or a typo'd key
(`"andriod_id"`) would make the report miss exactly the values the tester meant it to find. So
every key and every value's type is checked here, and a mistake is one line naming the file, the
key and — for an unknown key — the nearest valid one.
"""

from __future__ import annotations

import difflib
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

#: key -> the JSON shape it takes (documented in docs/verdicts.md and the README).
PROFILE_SCHEMA: dict[str, str] = {
    "imei": "list of strings",
    "android_id": "string",
    "advertising_id": "string",
    "oaid": "string",
    "serial": "string",
    "mac": "list of strings",
    "imsi": "string",
    "iccid": "string",
    "phone": "string",
    "email": "string",
    "account_id": "string",
    "location": "[latitude, longitude]",
    "urls": "list of strings",
    "search_terms": "list of strings",
    "extra": "object of name: string",
}
PROFILE_KEYS: tuple[str, ...] = tuple(PROFILE_SCHEMA)


class ProfileError(ValueError):
    """profile.json is unreadable or malformed; the message names the file."""


def _kind(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return f"the number {value!r}"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def nearest_key(key: str) -> str | None:
    """The valid key a typo most likely meant (`andriod_id` -> `android_id`, `IMEI` -> `imei`)."""
    folded = key.strip().casefold().replace("-", "_").replace(" ", "_")
    if folded in PROFILE_SCHEMA:
        return folded
    if folded.endswith("s") and folded[:-1] in PROFILE_SCHEMA:
        return folded[:-1]
    if folded + "s" in PROFILE_SCHEMA:
        return folded + "s"
    near = difflib.get_close_matches(folded, PROFILE_KEYS, n=1, cutoff=0.6)
    return near[0] if near else None


def _check_value(key: str, value: object) -> str | None:
    """Why `value` does not fit `key` (None when it does); null means "not known" and always fits."""
    shape = PROFILE_SCHEMA[key]
    if value is None:
        return None
    if shape == "string":
        if isinstance(value, str):
            return None
        hint = " (quote it: numbers lose leading zeros and digits)" if isinstance(value, int | float) else ""
        return f"must be a string, got {_kind(value)}{hint}"
    if shape == "list of strings":
        if isinstance(value, str):
            return f"must be a list of strings, got a string (write [{json.dumps(value)[:60]}])"
        if not isinstance(value, list):
            return f"must be a list of strings, got {_kind(value)}"
        for i, item in enumerate(value):
            if not isinstance(item, str):
                return f"item {i} must be a string, got {_kind(item)}"
        return None
    if shape == "[latitude, longitude]":
        if not isinstance(value, list) or len(value) != 2:
            size = f" of {len(value)} item(s)" if isinstance(value, list) else ""
            return f"must be [latitude, longitude], got {_kind(value)}{size}"
        lat, lon = value
        for name, number, bound in (("latitude", lat, 90), ("longitude", lon, 180)):
            if isinstance(number, bool) or not isinstance(number, int | float) or not math.isfinite(number):
                return f"{name} must be a number, got {_kind(number)}"
            if abs(number) > bound:
                return f"{name} {number} is out of range (-{bound}..{bound})"
        return None
    # extra: {name: string}
    if not isinstance(value, dict):
        return f"must be an object of name: string, got {_kind(value)}"
    for name, item in value.items():
        if item is not None and not isinstance(item, str):
            return f"value of {name!r} must be a string, got {_kind(item)}"
    return None


def validate(data: object, source: str = "profile") -> dict[str, Any]:
    """`data` checked against PROFILE_SCHEMA; raises ProfileError with one line naming the problem."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile must be a JSON object, got {_kind(data)}")
    for key, value in data.items():
        if key not in PROFILE_SCHEMA:
            near = nearest_key(str(key))
            hint = f" (did you mean {near!r}?)" if near else ""
            raise ProfileError(
                f"{source}: unknown key {str(key)!r}{hint}; valid keys: {', '.join(PROFILE_KEYS)}"
            )
        problem = _check_value(key, value)
        if problem:
            raise ProfileError(f"{source}: {key!r} {problem}")
    return dict(data)


@dataclass(slots=True)
class Profile:
    """Known values by profile key. List-valued keys (imei, mac, urls, search_terms) are lists."""

    values: dict[str, Any] = field(default_factory=dict)
    source: str = ""

    @classmethod
    def from_dict(cls, data: dict[str, Any], source: str = "") -> Profile:
        """A profile from parsed JSON, every key and type checked (ProfileError otherwise)."""
        return cls(validate(data, source or "profile"), source)

    @classmethod
    def load(cls, path: str | Path) -> Profile:
        path = Path(path)
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ProfileError(f"{path}: no such file") from None
        except json.JSONDecodeError as exc:
            raise ProfileError(
                f"{path}: line {exc.lineno} column {exc.colno}: not JSON ({exc.msg})"
            ) from None
        except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise ProfileError(f"{path}: not a JSON profile ({type(exc).__name__}: {exc})"[:300]) from None
        return cls.from_dict(data, str(path))

    def merged(self, other: Profile | None) -> Profile:
        """Values of self, with other's filling the gaps (an explicit --profile wins)."""
        if other is None:
            return self
        values = dict(other.values)
        values.update(self.values)
        return Profile(values, self.source or other.source)

    def known_values(self) -> list[tuple[str, str]]:
        """(profile key, value) for every scalar known value, lists flattened, extras by name."""
        pairs: list[tuple[str, str]] = []
        for key, value in self.values.items():
            if key == "extra" and isinstance(value, dict):
                pairs.extend((f"extra.{k}", str(v)) for k, v in value.items() if v not in (None, ""))
            elif key == "location":
                continue
            elif isinstance(value, list):
                pairs.extend((key, str(v)) for v in value if v not in (None, ""))
            elif value not in (None, ""):
                pairs.append((key, str(value)))
        return pairs
