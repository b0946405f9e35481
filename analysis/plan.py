"""Canary test plans (DESIGN.md "Test plan and canaries"): inputs a match can only come from.

A tester who browses ordinary sites cannot tell a leak of *their* visit from a page the vendor
would have fetched anyway. A canary is a URL or search term made for one test step: unique and
unguessable, so finding it in a request proves that this very step left the device, and harmless
to visit.

Canary URLs are ``https://example.com/?phc=<token>`` (plus ``example.org`` and ``example.net``
for the second and third URL, so each visit is a distinct site). The example domains are
reserved by IANA for documentation (RFC 2606, RFC 6761): they resolve, serve one static page
without scripts, trackers or third-party content, log nothing about the query and belong to no
one who could act on it. A host under a reserved TLD such as ``.invalid`` or ``.test`` would be
safer still but does not resolve: the browser shows an error page, and many browsers report no
page view for a failed load, so the canary would measure nothing. Search terms are two
dictionary words and a token (``phonehome canary <token>``): typed into the search box they go to
the search engine the tester chose, as any search does, and mean nothing to anyone.

A token is 10 characters of lower-case base32 (50 random bits from ``secrets``): no other request
on the phone will carry it by chance, and it survives every encoding the decoders undo (it is
letters and digits only, so URL-encoding leaves it as it is). Recall is measured by looking for
the token (analysis.verdicts.canaries).

Pure functions: ``make_plan`` builds the plan data, ``checklist`` the text a tester follows;
``load_plan`` / ``plan_profile`` are the only I/O, reading ``plan.json`` from capture folders.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from phonehome.analysis.modes import LabelError, clean_label, normalize_mode
from phonehome.analysis.profile import Profile, ProfileError

PLAN_NAME = "plan.json"
PLAN_SCHEMA = 1
MARKER = "http://phonehome.mark"
CANARY_HOSTS: tuple[str, ...] = ("example.com", "example.org", "example.net")
CANARY_PARAM = "phc"
SEARCH_PREFIX = "phonehome canary"
TOKEN_LENGTH = 10
IDLE_SECONDS = 120  # analytics SDKs batch events: wait so the batch holding the canaries is sent
KINDS: tuple[str, ...] = ("url", "search_query")


class PlanError(ProfileError):
    """plan.json is unreadable or malformed; the message names the file (exit 2, like a bad profile)."""


@dataclass(frozen=True, slots=True)
class Canary:
    """One canary: what to open or type, in which mode, and the token that proves it left."""

    id: str  # e.g. incognito-url-2
    mode: str
    kind: str  # "url" or "search_query" (the findings data type it should show up as)
    value: str  # the URL to open or the words to type
    token: str
    phase: str  # the phase marker opened before this step

    def as_dict(self) -> dict[str, str]:
        return {
            "id": self.id,
            "mode": self.mode,
            "kind": self.kind,
            "value": self.value,
            "token": self.token,
            "phase": self.phase,
        }


@dataclass(frozen=True, slots=True)
class Step:
    """One thing the tester does, in order: open a marker URL, open a canary URL, type a search, wait."""

    action: str  # "marker", "open", "search", "wait"
    text: str  # the URL, the words, or the seconds to wait
    mode: str
    note: str = ""

    def as_dict(self) -> dict[str, str]:
        return {"action": self.action, "text": self.text, "mode": self.mode, "note": self.note}


@dataclass(slots=True)
class Plan:
    """A test plan: canaries per mode and the steps, markers included, that a tester follows."""

    modes: list[str]
    canaries: list[Canary]
    steps: list[Step]
    app: str | None = None
    created: str = ""
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def canaries_of(self, mode: str | None = None, kind: str | None = None) -> list[Canary]:
        return [
            c for c in self.canaries if (mode is None or c.mode == mode) and (kind is None or c.kind == kind)
        ]

    def as_dict(self) -> dict[str, Any]:
        return {
            "schema": PLAN_SCHEMA,
            "created": self.created,
            "app": self.app,
            "modes": list(self.modes),
            "scheme": (
                f"canary URLs https://<{'|'.join(CANARY_HOSTS)}>/?{CANARY_PARAM}=<token> (IANA-reserved "
                f"documentation domains: harmless, static); search terms '{SEARCH_PREFIX} <token>'"
            ),
            "canaries": [c.as_dict() for c in self.canaries],
            "steps": [s.as_dict() for s in self.steps],
        }


def new_token(randbytes=secrets.token_bytes) -> str:
    """10 characters of lower-case base32: 50 random bits, letters and digits only."""
    return base64.b32encode(randbytes(7)).decode("ascii").lower()[:TOKEN_LENGTH]


def marker(kind: str, value: str) -> str:
    """The marker URL that sets a label from the phone (DESIGN.md "Recording")."""
    return f"{MARKER}/{kind}/{value}"


def make_plan(
    modes: Sequence[str] = ("normal", "incognito"),
    *,
    urls: int = 3,
    searches: int = 2,
    app: str | None = None,
    token=new_token,
    created: str | None = None,
) -> Plan:
    """A plan: for each mode, `urls` canary URLs and `searches` canary search terms, each step
    preceded by its marker URL, and an idle wait at the end of each mode (batched uploads)."""
    if urls < 0 or searches < 0 or urls + searches == 0:
        raise ValueError("a plan needs at least one canary URL or search term")
    normalized: list[str] = []
    for raw in modes:
        mode = normalize_mode(raw)
        if mode not in normalized:
            normalized.append(mode)
    if not normalized:
        raise ValueError("a plan needs at least one mode")
    app = clean_label(app, what="app") if app else None
    seen: set[str] = set()

    def fresh() -> str:
        while True:  # a repeat is astronomically unlikely; a test's token source may repeat
            value = token()
            if value not in seen:
                seen.add(value)
                return value

    canaries: list[Canary] = []
    steps: list[Step] = []
    if app:
        steps.append(Step("marker", marker("app", app), normalized[0], "the app under test"))
    for mode in normalized:
        private = mode != "normal"
        steps.append(
            Step(
                "marker",
                marker("mode", mode),
                mode,
                "open it in a new tab of the mode under test" if private else "",
            )
        )
        if urls:
            phase = f"{mode}-canary-urls"
            steps.append(Step("marker", marker("phase", phase), mode))
            for n in range(1, urls + 1):
                value = fresh()
                host = CANARY_HOSTS[(n - 1) % len(CANARY_HOSTS)]
                url = f"https://{host}/?{CANARY_PARAM}={value}"
                canaries.append(Canary(f"{mode}-url-{n}", mode, "url", url, value, phase))
                steps.append(Step("open", url, mode, "type it in the address bar, wait for the page"))
        if searches:
            phase = f"{mode}-canary-search"
            steps.append(Step("marker", marker("phase", phase), mode))
            for n in range(1, searches + 1):
                value = fresh()
                words = f"{SEARCH_PREFIX} {value}"
                canaries.append(Canary(f"{mode}-search-{n}", mode, "search_query", words, value, phase))
                steps.append(Step("search", words, mode, "type it in the search box, open the results"))
        steps.append(Step("marker", marker("phase", f"{mode}-idle"), mode))
        steps.append(Step("wait", str(IDLE_SECONDS), mode, "leave the phone alone: batched uploads go out"))
    stamp = created or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return Plan(normalized, canaries, steps, app=app, created=stamp)


def checklist(plan: Plan) -> str:
    """The printable checklist: every step, in order, with a box to tick."""
    lines = [
        "phonehome test plan" + (f" for {plan.app}" if plan.app else ""),
        f"created {plan.created}; modes: {', '.join(plan.modes)}",
        "",
        "Start the recorder (phonehome record ...) and set the phone to use it. Then, on the phone:",
        "",
    ]
    current = None
    for number, step in enumerate(plan.steps, 1):
        if step.mode != current:
            current = step.mode
            lines += ["", f"== mode: {current} =="]
        if step.action == "marker" or step.action == "open":
            text = f"open {step.text}"
        elif step.action == "search":
            text = f"search for: {step.text}"
        else:
            text = f"wait {step.text} seconds"
        note = f"   ({step.note})" if step.note else ""
        lines.append(f"[ ] {number:2d}. {text}{note}")
    lines += [
        "",
        "Type each canary exactly; do not open it in another mode. Keep plan.json in the capture",
        "folder (captures/<session>/plan.json): the analysis then looks for every canary and the",
        "report states how many left the device, in which mode, to whom.",
    ]
    return "\n".join(lines).replace("\n\n\n", "\n\n") + "\n"


def plan_from_dict(data: object, source: str = "") -> Plan:
    """A Plan from plan.json's content; PlanError naming `source` and the bad entry otherwise."""
    where = source or "plan"
    if not isinstance(data, dict):
        raise PlanError(f"{where}: a plan must be a JSON object")
    if data.get("schema") != PLAN_SCHEMA:
        raise PlanError(f"{where}: unsupported plan schema {data.get('schema')!r} (expected {PLAN_SCHEMA})")
    raw_canaries = data.get("canaries")
    if not isinstance(raw_canaries, list) or not raw_canaries:
        raise PlanError(f"{where}: 'canaries' must be a non-empty list")
    canaries = []
    for index, item in enumerate(raw_canaries):
        try:
            if not isinstance(item, dict):
                raise ValueError("not an object")
            kind = item["kind"]
            if kind not in KINDS:
                raise ValueError(f"kind {kind!r} is not one of {', '.join(KINDS)}")
            token = str(item["token"])
            if len(token) < 6 or token.lower() not in str(item["value"]).lower():
                raise ValueError("its token must be at least 6 characters and part of its value")
            canaries.append(
                Canary(
                    str(item["id"]),
                    normalize_mode(item["mode"]),
                    kind,
                    str(item["value"]),
                    token.lower(),
                    str(item.get("phase") or ""),
                )
            )
        except KeyError as exc:
            raise PlanError(f"{where}: canaries[{index}] lacks {exc.args[0]!r}") from None
        except (ValueError, TypeError, LabelError) as exc:
            raise PlanError(f"{where}: canaries[{index}]: {exc}") from None
    modes = [c.mode for c in canaries]
    steps = [
        Step(str(s.get("action", "")), str(s.get("text", "")), str(s.get("mode", "")), str(s.get("note", "")))
        for s in data.get("steps") or []
        if isinstance(s, dict)
    ]
    return Plan(
        list(dict.fromkeys(modes)),
        canaries,
        steps,
        app=data.get("app") or None,
        created=str(data.get("created") or ""),
        source=source,
    )


def load_plan(path: str | Path) -> Plan:
    path = Path(path)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise PlanError(f"{path}: no such file") from None
    except json.JSONDecodeError as exc:
        raise PlanError(f"{path}: line {exc.lineno} column {exc.colno}: not JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PlanError(f"{path}: unreadable ({exc})") from None
    return plan_from_dict(data, str(path))


def find_plans(paths: Iterable[str | Path]) -> list[Plan]:
    """The plan.json of every capture directory among `paths` (or beside a dump), each once."""
    plans: list[Plan] = []
    seen: set[Path] = set()
    for raw in paths:
        path = Path(raw)
        candidate = (path if path.is_dir() else path.parent) / PLAN_NAME
        if candidate.is_file() and candidate.resolve() not in seen:
            seen.add(candidate.resolve())
            plans.append(load_plan(candidate))
    return plans


def merge_plan_canaries(profile: Profile | None, paths: Iterable[str | Path]) -> Profile | None:
    """The profile with every canary of the plans beside `paths` added to its urls/search_terms,
    so the classifier finds them as known values under any encoding. None stays None when no plan."""
    plans = find_plans(list(paths))
    if not plans:
        return profile
    values = dict(profile.values) if profile is not None else {}
    for key, kind in (("urls", "url"), ("search_terms", "search_query")):
        merged = list(values.get(key) or [])
        for plan in plans:
            merged += [c.value for c in plan.canaries_of(kind=kind) if c.value not in merged]
        if merged:
            values[key] = merged
    return Profile(values, profile.source if profile is not None else plans[0].source)


def write_plan(plan: Plan, path: str | Path) -> Path:
    """plan.json, user-only (it says what the tester will do)."""
    import os

    path = Path(path)
    if path.parent != Path(""):
        path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(plan.as_dict(), indent=2) + "\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return path
