"""Claims against observations: each claim's verdict, why, and the findings that decide it.

Pure functions from a claims file and the analysis tables (findings, flows, contacts) to one row
per claim and app. A verdict is one of:

- ``contradicted``: the capture holds evidence against the claim (the findings are listed);
- ``consistent``: nothing against it was seen, and coverage was good enough to see it;
- ``inconclusive``: the capture cannot decide, and the reason says why (mode not tested, hosts
  contacted but not decrypted, payloads not read, TLS versions not recorded, the field never sent,
  the claimant's own host name running another company's software...).

Coverage only ever weakens "consistent": a leak seen is a leak, whatever else was not seen; but
"nothing seen" over hosts we could not decrypt is not "nothing sent", and neither is "nothing
seen" over payloads we could not read (a body no decoder opened, or decoding stopped at a bound or
on a decoder error; DESIGN.md: "inconclusive with the reason (e.g. hosts not decrypted, opaque
payloads)"). Claims about what data was sent (no_upload, unlinkable, anonymous, aggregated,
opt_out_effective, declared) weigh both, in the claim's modes and destination; `random_token`
weighs the unread content of the requests that carried the token; `encrypted` weighs only
decoding stopped early (an opaque body is what the claim says); claims about contact or TLS weigh
only undecrypted hosts. Sentences name data types, fields and hosts, never captured values; a
host name can still hold one, so a `--redact` report scrubs the claims table like every other
(analysis.cli.plan.add_study_tables).

The precise meaning of each type (docs/claims.md has an example of each):
- ``no_upload`` (mode, data_types): contradicted by any finding of those types (default: any) in
  that mode.
- ``no_contact`` (mode, owner/category/destination): contradicted by any request or contact (DNS,
  refused TLS) in that mode to such a host.
- ``unlinkable`` (modes A, B): contradicted by an identifier (device ids, user id, token, contact
  data) with the same value in both modes.
- ``anonymous`` (destination): contradicted by a hardware/OS identifier, an account id, contact
  data (also hashed: the profile matches hashes), or any identifier seen in more than one
  (session, mode) pair.
- ``aggregated`` (destination): contradicted by per-event records: a request, timed as it was
  sent, whose record (one list element of a batch, or the request itself) pairs an event's URL
  or search with an identifier.
- ``random_token`` (field): contradicted by a value at that field that equals a hardware/OS
  identifier, is its md5/sha1/sha256 (hex or base64) or base64, is sent in the same request as
  one, or recurs across sessions or modes.
- ``encrypted``: contradicted by data readable after undoing encodings only (base64, gzip, JSON...
  are not encryption) or sent plain inside TLS.
- ``tls_min`` (version): needs each flow's negotiated TLS version (`tls_version` in flows);
  contradicted by an older version or by plain HTTP.
- ``not_shared_with`` (owner): contradicted by a request to that owner's hosts; inconclusive when
  the owner's software (its SDK's wire format) runs on the claimant's own host name, since who
  operates that server cannot be seen in traffic.
- ``opt_out_effective`` (mode, silences): contradicted when what the silenced mode sent (data
  type and destination) is still sent in the opted-out mode.
- ``declared`` (collected, shared): per data type, declared and seen / seen but undeclared /
  declared, not seen / neither; contradicted by any type seen but undeclared.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd

from phonehome.analysis.claims import Claim, ClaimsFile, expand_data_types
from phonehome.analysis.findings import DATA_TYPES, incomplete_mask, opaque_mask
from phonehome.analysis.verdicts.canaries import finding_ids
from phonehome.analysis.verdicts.evidence import evidence_ids, join_ids

COLUMNS: tuple[str, ...] = (
    "app",
    "claim",
    "type",
    "paraphrase",
    "source",
    "verdict",
    "reason",
    "why",
    "finding_ids",
    "evidence_ids",
)
CONTRADICTED, CONSISTENT, INCONCLUSIVE = "contradicted", "consistent", "inconclusive"

#: One mode, several (a claim about two modes), or None: every mode.
Modes = str | Sequence[str] | None
MAX_IDS = 40  # in the table; `ClaimVerdict.finding_ids` keeps them all

# Hardware and OS identifiers: they name the phone, whatever an app says about its own ids.
HARDWARE_TYPES = frozenset(t for t in DATA_TYPES if t.startswith("device_id.") and t != "device_id.other")
IDENTIFIER_TYPES = frozenset({*(t for t in DATA_TYPES if t.startswith("device_id.")), "user_id", "token"})
PERSONAL_TYPES = frozenset({"user_id", "contact.email", "contact.phone"})
EVENT_TYPES = frozenset({"url", "search_query"})
# Wire-format signs of analytics software that may run on a customer's own host name. Source:
# Sensors Analytics Android SDK (github.com/sensorsdata/sa-sdk-android): events are posted as
# form field `data_list` (base64 of gzip'd JSON), each event's properties named with a `$` prefix.
SOFTWARE_SIGNATURES: dict[str, tuple[str, ...]] = {"sensors data": ("data_list", "$")}


@dataclass(slots=True)
class ClaimVerdict:
    """One claim's verdict for one app."""

    claim: Claim
    app: str
    verdict: str
    reason: str
    why: str
    finding_ids: list[str] = field(default_factory=list)
    evidence_ids: str = ""  # the evidence groups (analysis.verdicts.evidence) the findings belong to

    def row(self) -> tuple:
        ids = self.finding_ids[:MAX_IDS]
        more = len(self.finding_ids) - len(ids)
        return (
            self.app,
            self.claim.id,
            self.claim.describe(),
            self.claim.paraphrase,
            self.claim.source_text,
            self.verdict,
            self.reason,
            self.why,
            "; ".join(ids) + (f"; (+{more} more)" if more > 0 else ""),
            self.evidence_ids,
        )


@dataclass(slots=True)
class Observed:
    """The tables of one app (all apps when unlabelled)."""

    app: str
    findings: pd.DataFrame
    flows: pd.DataFrame
    contacts: pd.DataFrame
    claimant_sites: list[str]
    known: dict[str, list[str]]  # profile values, for hashes of identifiers

    def modes(self) -> set[str]:
        return set(self.flows["mode"]) | set(self.contacts["mode"])

    def blind_hosts(self, modes: Modes = None, destination: str | None = None) -> list[str]:
        """Hosts contacted without being decrypted (refused TLS, SNI only, bare TCP), in `modes`
        (a mode, several, or None for every mode)."""
        rows = _in_modes(self.contacts[self.contacts["kind"] != "dns"], modes)
        if destination:
            rows = rows[_destination_mask(rows, destination)]
        return sorted(set(rows["host"]) - set(self.flows["host"]))

    def unread_payloads(
        self, modes: Modes = None, destination: str | None = None, opaque: bool = True
    ) -> pd.DataFrame:
        """Decrypted requests whose content was not all read: a body no decoder opened
        (`opaque_bytes`; left out with `opaque=False`), or decoding stopped early at a bound or on a
        decoder error (`decode_truncated`). What they carried is unknown, like what an undecrypted
        host received."""
        flows = self.flows
        unread = incomplete_mask(flows)
        if opaque:
            unread |= opaque_mask(flows)
        rows = _in_modes(flows[unread], modes)
        return rows[_destination_mask(rows, destination)]


def _in_modes(frame: pd.DataFrame, modes: Modes) -> pd.DataFrame:
    if modes is None:
        return frame
    return frame[frame["mode"].isin([modes] if isinstance(modes, str) else list(modes))]


def _destination_mask(frame: pd.DataFrame, destination: str | None) -> pd.Series:
    """Rows whose host is `destination` or under it, or whose owner is named so. Decided once per
    distinct host and owner (a run has few), not per row."""
    if not destination or frame.empty:
        return pd.Series(True, index=frame.index)
    d = destination.lower().strip(".")
    hosts = {h for h in pd.unique(frame["host"]) if str(h).lower() == d or str(h).lower().endswith("." + d)}
    mask = frame["host"].isin(hosts)
    if "owner" in frame:
        owners = {o for o in pd.unique(frame["owner"]) if str(o).casefold() == destination.casefold()}
        mask |= frame["owner"].isin(owners)
    return mask


def _per_distinct(values: pd.Series, fn) -> pd.Series:
    """fn applied once per distinct value (field paths and hosts repeat over thousands of rows)."""
    return values.map({v: fn(str(v)) for v in pd.unique(values)})


def _scoped(frame: pd.DataFrame, claim: Claim) -> pd.DataFrame:
    return frame[_destination_mask(frame, claim.params.get("destination"))]


def _hosts(rows: pd.DataFrame) -> str:
    pairs = sorted({(h, o) for h, o in zip(rows["host"], rows["owner"], strict=True)})
    return ", ".join(f"{h} ({o})" if o else h for h, o in pairs)


def _types(rows: pd.DataFrame) -> str:
    return ", ".join(sorted(set(rows["data_type"])))


def _chains(rows: pd.DataFrame) -> str:
    chains = sorted({c.replace(">", "+") for c in rows["encodings"] if c})
    plain = ["plain text"] if (rows["encodings"] == "").any() else []
    return ", ".join(chains + plain)


def _where(claim: Claim) -> str:
    d = claim.params.get("destination")
    return f" to {d}" if d else ""


def _not_tested(claim: Claim, obs: Observed, modes: Sequence[str]) -> ClaimVerdict | None:
    missing = [m for m in modes if m not in obs.modes()]
    if not missing:
        return None
    return ClaimVerdict(
        claim,
        obs.app,
        INCONCLUSIVE,
        "mode not tested",
        f"No traffic was recorded in {' or '.join(missing)} mode, so the claim cannot be checked.",
    )


def _first(names: list[str], limit: int = 5) -> str:
    """The first `limit` names, then "..." when there are more."""
    return ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")


def _blind(claim: Claim, obs: Observed, what: str, modes: Modes = None) -> ClaimVerdict | None:
    hosts = obs.blind_hosts(modes, claim.params.get("destination"))
    if not hosts:
        return None
    return ClaimVerdict(
        claim,
        obs.app,
        INCONCLUSIVE,
        "hosts not decrypted",
        f"{what} in the decrypted traffic, but {len(hosts)} host(s) were contacted without being "
        f"decrypted ({_first(hosts)}); what they received is unknown.",
    )


def _unread(
    claim: Claim, obs: Observed, what: str, modes: Modes = None, opaque: bool = True
) -> ClaimVerdict | None:
    rows = obs.unread_payloads(modes, claim.params.get("destination"), opaque)
    if rows.empty:
        return None
    return ClaimVerdict(
        claim,
        obs.app,
        INCONCLUSIVE,
        "payloads not read",
        f"{what} in what could be read, but {len(rows)} request(s) to {_first(sorted(set(rows['host'])))} "
        "carried content that was not read (a body no decoder could open, or decoding that stopped "
        "early); what it held is unknown.",
        [f"flow:{f}" for f in rows["flow_id"]],
    )


def _unseen(claim: Claim, obs: Observed, what: str, modes: Modes = None) -> ClaimVerdict | None:
    """Inconclusive when something could have been sent unseen in `modes`: hosts not decrypted,
    then payloads not read."""
    return _blind(claim, obs, what, modes) or _unread(claim, obs, what, modes)


def _consistent(claim: Claim, obs: Observed, why: str) -> ClaimVerdict:
    return ClaimVerdict(claim, obs.app, CONSISTENT, "nothing against it seen", why)


# --- one function per claim type ------------------------------------------------------------------


def _no_upload(claim: Claim, obs: Observed) -> ClaimVerdict:
    mode = claim.params["mode"]
    wanted = expand_data_types(claim.params.get("data_types", [])) or set(DATA_TYPES)
    rows = _scoped(obs.findings, claim)
    rows = rows[(rows["mode"] == mode) & rows["data_type"].isin(wanted)]
    if not rows.empty:
        return ClaimVerdict(
            claim,
            obs.app,
            CONTRADICTED,
            f"{_types(rows)} sent in {mode} mode",
            f"In {mode} mode, {rows['flow_id'].nunique()} request(s) sent {_types(rows)} to {_hosts(rows)}, "
            f"encoded as {_chains(rows)}.",
            finding_ids(rows),
        )
    return (
        _not_tested(claim, obs, [mode])
        or _unseen(claim, obs, f"Nothing of those types was seen leaving in {mode} mode", mode)
        or _consistent(claim, obs, f"No request in {mode} mode carried {', '.join(sorted(wanted))}.")
    )


def _no_contact(claim: Claim, obs: Observed) -> ClaimVerdict:
    mode = claim.params["mode"]
    target = claim.params.get("owner") or claim.params.get("destination") or claim.params.get("category")

    def match(frame: pd.DataFrame) -> pd.DataFrame:
        frame = frame[frame["mode"] == mode]
        if "owner" in claim.params:
            frame = frame[frame["owner"].astype(str).str.casefold() == claim.params["owner"].casefold()]
        if "category" in claim.params:
            frame = frame[frame["category"] == claim.params["category"]]
        return _scoped(frame, claim)

    flows, contacts = match(obs.flows), match(obs.contacts)
    if not flows.empty or not contacts.empty:
        hosts = sorted(set(flows["host"]) | set(contacts["host"]))
        kinds = sorted(set(contacts["kind"]))
        ids = finding_ids(obs.findings[obs.findings["flow_id"].isin(set(flows["flow_id"]))])
        ids += [f"flow:{f}" for f in flows["flow_id"]] if not ids else []
        how = f"{len(flows)} request(s)" + (
            f" and {len(contacts)} contact(s) ({', '.join(kinds)})" if kinds else ""
        )
        return ClaimVerdict(
            claim,
            obs.app,
            CONTRADICTED,
            f"{target} contacted in {mode} mode",
            f"In {mode} mode the app reached {target}: {how}, hosts {', '.join(hosts)}.",
            ids,
        )
    return _not_tested(claim, obs, [mode]) or _consistent(
        claim, obs, f"No request, DNS query or TLS handshake to {target} was seen in {mode} mode."
    )


def _linking(rows: pd.DataFrame, modes: Sequence[str]) -> pd.DataFrame:
    """Identifier findings whose value was sent in every one of `modes`."""
    ids = rows[rows["data_type"].isin(IDENTIFIER_TYPES | PERSONAL_TYPES) & (rows["value"] != "")]
    if ids.empty:
        return ids
    key = ids["value"].astype(str).str.lower()
    modes_of = ids.groupby(key)["mode"].agg(lambda m: set(m))
    shared = {v for v, ms in modes_of.items() if set(modes) <= ms}
    return ids[key.isin(shared) & ids["mode"].isin(modes)]


def _unlinkable(claim: Claim, obs: Observed) -> ClaimVerdict:
    modes = claim.params["modes"]
    rows = _linking(_scoped(obs.findings, claim), modes)
    if not rows.empty:
        fields = sorted({f.rsplit(".", 1)[-1] for f in rows["field"]})
        return ClaimVerdict(
            claim,
            obs.app,
            CONTRADICTED,
            f"same identifiers in {' and '.join(modes)}",
            f"{rows['value'].nunique()} identifier value(s) ({_types(rows)}; fields {', '.join(fields[:6])}) "
            f"were sent in both {modes[0]} and {modes[1]} mode to {_hosts(rows)}: "
            "the sessions can be joined.",
            finding_ids(rows),
        )
    return (
        _not_tested(claim, obs, modes)
        or _unseen(claim, obs, f"No identifier was seen in both {' and '.join(modes)} mode", modes)
        or _consistent(claim, obs, f"No identifier value was sent in both {modes[0]} and {modes[1]} mode.")
    )


def _identifying(rows: pd.DataFrame) -> pd.DataFrame:
    strong = rows["data_type"].isin(HARDWARE_TYPES | PERSONAL_TYPES)
    persistent = rows["data_type"].isin(IDENTIFIER_TYPES) & rows["evidence"].str.contains("persistence")
    return rows[strong | persistent]


def _anonymous(claim: Claim, obs: Observed) -> ClaimVerdict:
    rows = _identifying(_scoped(obs.findings, claim))
    if not rows.empty:
        hashed = _per_distinct(rows["field"], lambda f: bool(re.search("md5|sha1|sha256|hash", f, re.I)))
        extra = " (some as hashes, which identify just as well)" if hashed.any() else ""
        return ClaimVerdict(
            claim,
            obs.app,
            CONTRADICTED,
            "persistent or hardware identifiers sent",
            f"{_hosts(rows)} received {_types(rows)}{extra}: identifiers that name the phone or "
            "recur across sessions and modes.",
            finding_ids(rows),
        )
    return _unseen(claim, obs, "No identifier was seen") or _consistent(
        claim, obs, f"No hardware, account or persistent identifier was sent{_where(claim)}."
    )


def _record_key(field_path: str) -> str:
    """The record a field belongs to: up to and including its first list index (`data_list[2]`),
    or the whole request when the field is in no list."""
    head, sep, _ = field_path.partition("]")
    return head + sep if sep else ""


def _aggregated(claim: Claim, obs: Observed) -> ClaimVerdict:
    rows = _scoped(obs.findings, claim)
    rows = rows.assign(_record=_per_distinct(rows["field"], _record_key))
    events = rows[rows["data_type"].isin(EVENT_TYPES)][["flow_id", "_record"]].drop_duplicates()
    ids = rows[rows["data_type"].isin(IDENTIFIER_TYPES)][["flow_id", "_record"]].drop_duplicates()
    records = events.merge(ids, on=["flow_id", "_record"])
    if not records.empty:
        keys = set(zip(records["flow_id"], records["_record"], strict=True))
        hit = rows[[k in keys for k in zip(rows["flow_id"], rows["_record"], strict=True)]]
        hit = hit[hit["data_type"].isin(EVENT_TYPES | IDENTIFIER_TYPES)]
        return ClaimVerdict(
            claim,
            obs.app,
            CONTRADICTED,
            "per-event records with an identifier",
            f"{len(keys)} single-event record(s) in {hit['flow_id'].nunique()} request(s) to {_hosts(hit)}, "
            f"each sent at its own time (request timestamps), pair a URL or search with an identifier "
            f"({_types(hit[hit['data_type'].isin(IDENTIFIER_TYPES)])}): individual records, not aggregates.",
            finding_ids(hit),
        )
    return _unseen(claim, obs, "No per-event record with an identifier was seen") or _consistent(
        claim, obs, f"No request{_where(claim)} paired a URL or search with an identifier."
    )


def _hash_forms(value: str) -> set[str]:
    raw = value.encode()
    forms = {value.lower(), base64.b64encode(raw).decode().lower().rstrip("=")}
    for name in ("md5", "sha1", "sha256"):
        digest = hashlib.new(name, raw).digest()
        forms |= {digest.hex(), base64.b64encode(digest).decode().lower().rstrip("=")}
    return forms


def _random_token(claim: Claim, obs: Observed) -> ClaimVerdict:
    name = claim.params["field"].lower()
    rows = _scoped(obs.findings, claim)
    named = _per_distinct(rows["field"], lambda f: f.lower() == name or f.rsplit(".", 1)[-1].lower() == name)
    tokens = rows[named.astype(bool)]
    tokens = tokens[tokens["value"] != ""]
    if tokens.empty:
        return _blind(claim, obs, f"The field {name!r} was not seen") or ClaimVerdict(
            claim, obs.app, INCONCLUSIVE, "field not seen", f"No request carried a field named {name!r}."
        )
    hardware = rows[rows["data_type"].isin(HARDWARE_TYPES) & ~rows.index.isin(tokens.index)]
    known = {v for k, vs in obs.known.items() for v in vs}
    derived: dict[str, str] = {}
    for value in set(hardware["value"].astype(str)) | known:
        for form in _hash_forms(value):
            derived.setdefault(form, value)
    values = tokens["value"].astype(str).str.lower().str.rstrip("=")
    equal = tokens[values.isin(derived) | tokens["data_type"].isin(HARDWARE_TYPES)]
    alongside_flows = set(tokens["flow_id"]) & set(hardware["flow_id"])
    persistent = tokens[tokens["evidence"].str.contains("persistence")]
    reasons, ids = [], []
    if not equal.empty:
        reasons.append("equals or is derived from a hardware/OS identifier")
        ids += finding_ids(equal)
    if alongside_flows:
        beside = hardware[hardware["flow_id"].isin(alongside_flows)]
        reasons.append(f"is sent in the same requests as {_types(beside)}")
        ids += finding_ids(tokens[tokens["flow_id"].isin(alongside_flows)]) + finding_ids(beside)
    if not persistent.empty:
        modes = sorted(set(persistent["mode"]))
        sessions = sorted(set(persistent["session"]))
        reasons.append(f"keeps its value across {', '.join(modes)} mode(s) and {len(sessions)} session(s)")
        ids += finding_ids(persistent)
    if reasons:
        return ClaimVerdict(
            claim,
            obs.app,
            CONTRADICTED,
            "token tied to the device",
            f"The {name!r} value sent to {_hosts(tokens)} " + "; ".join(reasons) + ".",
            list(dict.fromkeys(ids)),
        )
    unread = obs.unread_payloads(destination=claim.params.get("destination"))
    unread = unread[unread["flow_id"].isin(set(tokens["flow_id"]))]
    if not unread.empty:  # "travelled without them" needs the whole of those requests read
        return ClaimVerdict(
            claim,
            obs.app,
            INCONCLUSIVE,
            "payloads not read",
            f"The {name!r} value matched no hardware identifier or hash of one, but {len(unread)} of the "
            f"{tokens['flow_id'].nunique()} request(s) carrying it ({_first(sorted(set(unread['host'])))}) "
            "held content that was not read; an identifier may have travelled with it there.",
            [f"flow:{f}" for f in unread["flow_id"]],
        )
    return _consistent(
        claim,
        obs,
        f"The {name!r} value matched no hardware identifier or hash of one, travelled without them, "
        "and did not recur across sessions or modes.",
    )


def _encrypted(claim: Claim, obs: Observed) -> ClaimVerdict:
    rows = _scoped(obs.findings, claim)
    wanted = expand_data_types(claim.params.get("data_types", []))
    if wanted:
        rows = rows[rows["data_type"].isin(wanted)]
    if not rows.empty:
        return ClaimVerdict(
            claim,
            obs.app,
            CONTRADICTED,
            "readable after undoing encodings only",
            f"{_types(rows)} sent to {_hosts(rows)} were readable after undoing {_chains(rows)}: encodings, "
            "which anyone can reverse without a key; only TLS protected them in transit.",
            finding_ids(rows),
        )
    return (  # an opaque body fits the claim; one whose decoding stopped early may hold readable data
        _blind(claim, obs, "No readable data was seen")
        or _unread(claim, obs, "No readable data was seen", opaque=False)
        or _consistent(
            claim,
            obs,
            f"Nothing{_where(claim)} was readable after undoing encodings (payloads opaque or empty).",
        )
    )


def _tls_rank(version: object) -> float | None:
    text = str(version or "").upper().replace("TLSV", "").replace("TLS", "").strip()
    if text.startswith("SSL"):
        return 0.0
    try:
        return float(text)
    except ValueError:
        return None


def _tls_min(claim: Claim, obs: Observed) -> ClaimVerdict:
    minimum = float(claim.params["version"])
    flows = _scoped(obs.flows, claim)
    if flows.empty:
        return _blind(claim, obs, "No decrypted request") or ClaimVerdict(
            claim, obs.app, INCONCLUSIVE, "no requests", f"No request{_where(claim)} was recorded."
        )
    plain = flows[flows["url"].astype(str).str.startswith("http://")]
    if "tls_version" not in flows:
        if not plain.empty:
            return ClaimVerdict(
                claim,
                obs.app,
                CONTRADICTED,
                "plain HTTP",
                f"{len(plain)} request(s) to {', '.join(sorted(set(plain['host'])))} went without TLS.",
                [f"flow:{f}" for f in plain["flow_id"]],
            )
        return ClaimVerdict(
            claim,
            obs.app,
            INCONCLUSIVE,
            "TLS versions not recorded",
            "This capture's flows carry no negotiated TLS version, so the claim cannot be checked.",
        )
    ranks = flows["tls_version"].map(_tls_rank)
    old = flows[(ranks < minimum) & ranks.notna()]
    bad = pd.concat([plain, old]).drop_duplicates("flow_id")
    if not bad.empty:
        versions = sorted({str(v) for v in old["tls_version"]}) + (
            ["none (plain HTTP)"] if not plain.empty else []
        )
        return ClaimVerdict(
            claim,
            obs.app,
            CONTRADICTED,
            f"below TLS {claim.params['version']}",
            f"{len(bad)} request(s) to {', '.join(sorted(set(bad['host'])))} used {', '.join(versions)}.",
            [f"flow:{f}" for f in bad["flow_id"]],
        )
    unknown = flows[ranks.isna() & ~flows.index.isin(plain.index)]
    if not unknown.empty:
        return ClaimVerdict(
            claim,
            obs.app,
            INCONCLUSIVE,
            "TLS version unknown for some requests",
            f"{len(unknown)} of {len(flows)} request(s) carry no negotiated TLS version.",
        )
    seen = ", ".join(sorted({str(v) for v in flows["tls_version"]}))
    return _blind(claim, obs, f"Every request negotiated {seen}") or _consistent(
        claim, obs, f"All {len(flows)} request(s){_where(claim)} negotiated {seen}."
    )


def _on_claimant_host(rows: pd.DataFrame, sites: list[str]) -> pd.Series:
    def own(host: str) -> bool:
        host = str(host).lower()
        return any(host == s or host.endswith("." + s) for s in sites)

    return rows["site"].astype(str).str.lower().isin(sites) | rows["host"].isin(
        {h for h in pd.unique(rows["host"]) if own(h)}
    )


def _not_shared_with(claim: Claim, obs: Observed) -> ClaimVerdict:
    owner = claim.params["owner"]
    sites = [s.lower() for s in claim.params.get("owner_sites", [])]
    flows = obs.flows
    theirs = (flows["owner"].astype(str).str.casefold() == owner.casefold()) | flows["site"].isin(sites)
    direct = flows[theirs]
    if not direct.empty:
        rows = obs.findings[obs.findings["flow_id"].isin(set(direct["flow_id"]))]
        ids = finding_ids(rows) or [f"flow:{f}" for f in direct["flow_id"]]
        return ClaimVerdict(
            claim,
            obs.app,
            CONTRADICTED,
            f"requests to {owner}",
            f"{len(direct)} request(s) went to {owner}'s hosts ({', '.join(sorted(set(direct['host'])))})"
            + (f", carrying {_types(rows)}." if not rows.empty else "."),
            ids,
        )
    contacted = obs.contacts[
        (obs.contacts["owner"].astype(str).str.casefold() == owner.casefold())
        | obs.contacts["site"].isin(sites)
    ]
    if not contacted.empty:
        return ClaimVerdict(
            claim,
            obs.app,
            INCONCLUSIVE,
            "hosts not decrypted",
            f"The phone contacted {owner}'s hosts ({', '.join(sorted(set(contacted['host'])))}) "
            "but the content was not decrypted.",
        )
    signs = claim.params.get("signature_fields") or SOFTWARE_SIGNATURES.get(owner.casefold(), ())
    rows = obs.findings
    if signs and obs.claimant_sites and not rows.empty:
        own = rows[_on_claimant_host(rows, obs.claimant_sites)]
        segments = own["field"].astype(str)
        looks = pd.Series(True, index=own.index)
        for sign in signs:
            looks &= segments.str.contains(sign, regex=False)
        software = own[looks]
        if not software.empty:
            return ClaimVerdict(
                claim,
                obs.app,
                INCONCLUSIVE,
                f"{owner}'s software on the claimant's host name",
                f"No request went to {owner}'s own hosts, but {_hosts(software)}, a host name of the "
                f"claimant, receives data in {owner}'s SDK format (fields {', '.join(signs)}): "
                "who operates the server behind that name, and who else reads the data, cannot be seen "
                "in the traffic.",
                finding_ids(software),
            )
    return _consistent(claim, obs, f"No request or contact went to a host of {owner}.")


def _opt_out_effective(claim: Claim, obs: Observed) -> ClaimVerdict:
    mode = claim.params["mode"]
    silenced = claim.params.get("silences", "incognito")
    wanted = expand_data_types(claim.params.get("data_types", [])) or set(DATA_TYPES)
    rows = _scoped(obs.findings, claim)
    rows = rows[rows["data_type"].isin(wanted)]
    before = rows[rows["mode"] == silenced]
    after = rows[rows["mode"] == mode]
    untested = _not_tested(claim, obs, [mode, silenced])
    if untested:
        return untested
    if before.empty:
        return ClaimVerdict(
            claim,
            obs.app,
            INCONCLUSIVE,
            f"nothing to silence in {silenced}",
            f"Nothing of those types was sent in {silenced} mode, so there is nothing the opt-out "
            "could stop.",
        )
    pairs_before = set(zip(before["host"], before["data_type"], strict=True))
    still = after[[p in pairs_before for p in zip(after["host"], after["data_type"], strict=True)]]
    if not still.empty:
        kept = len(set(zip(still["host"], still["data_type"], strict=True)))
        return ClaimVerdict(
            claim,
            obs.app,
            CONTRADICTED,
            f"still sent in {mode}",
            f"With the opt-out ({mode} mode), {kept} of the {len(pairs_before)} (destination, data type) "
            f"pairs sent in {silenced} mode were still sent: {_types(still)} to {_hosts(still)}.",
            finding_ids(still),
        )
    return _unseen(
        claim, obs, f"Nothing sent in {silenced} mode was seen in {mode} mode", mode
    ) or _consistent(
        claim,
        obs,
        f"None of the {len(pairs_before)} (destination, data type) pairs sent in {silenced} mode was sent "
        f"in {mode} mode.",
    )


DECLARED_OUTCOMES = ("seen but undeclared", "declared and seen", "declared, not seen", "neither")


def declared_outcomes(claim: Claim, findings: pd.DataFrame) -> dict[str, list[str]]:
    """The four outcomes per data type of a store declaration (data-safety label)."""
    declared = expand_data_types(claim.params.get("collected", []) + claim.params.get("shared", []))
    seen = set(findings["data_type"]) & set(DATA_TYPES)
    return {
        "seen but undeclared": sorted(seen - declared),
        "declared and seen": sorted(seen & declared),
        "declared, not seen": sorted(declared - seen),
        "neither": sorted(set(DATA_TYPES) - seen - declared),
    }


def _declared(claim: Claim, obs: Observed) -> ClaimVerdict:
    outcomes = declared_outcomes(claim, obs.findings)
    summary = "; ".join(
        f"{name}: {', '.join(types) or 'none'}" for name, types in outcomes.items() if name != "neither"
    )
    undeclared = outcomes["seen but undeclared"]
    if undeclared:
        rows = obs.findings[obs.findings["data_type"].isin(undeclared)]
        return ClaimVerdict(
            claim, obs.app, CONTRADICTED, "data types seen but undeclared", summary + ".", finding_ids(rows)
        )
    return _unseen(claim, obs, "Every data type seen was declared") or _consistent(claim, obs, summary + ".")


CHECKS = {
    "no_upload": _no_upload,
    "no_contact": _no_contact,
    "unlinkable": _unlinkable,
    "anonymous": _anonymous,
    "aggregated": _aggregated,
    "random_token": _random_token,
    "encrypted": _encrypted,
    "tls_min": _tls_min,
    "not_shared_with": _not_shared_with,
    "opt_out_effective": _opt_out_effective,
    "declared": _declared,
}


def _apps(claim: Claim, default_app: str | None, flows: pd.DataFrame) -> list[str]:
    app = claim.app or default_app
    if app:
        return [app]
    apps = sorted({a for a in flows["app"] if a})
    return apps or [""]


def judge_claims(
    claims_files: Sequence[ClaimsFile],
    findings: pd.DataFrame,
    flows: pd.DataFrame,
    contacts: pd.DataFrame,
    known: dict[str, list[str]] | None = None,
) -> list[ClaimVerdict]:
    """Every claim's verdict, per app it concerns (the claim's app, the file's, or each app seen)."""
    verdicts = []
    observed: dict[tuple[int, str], Observed] = {}  # each app's tables sliced once per file
    for number, claims_file in enumerate(claims_files):
        for claim in claims_file.claims:
            for app in _apps(claim, claims_file.app, flows):
                obs = observed.get((number, app))
                if obs is None:

                    def mine(frame: pd.DataFrame, app: str = app) -> pd.DataFrame:
                        return frame[frame["app"].fillna("") == app] if app and not frame.empty else frame

                    obs = observed[(number, app)] = Observed(
                        app,
                        mine(findings),
                        mine(flows),
                        mine(contacts),
                        claims_file.claimant_sites,
                        known or {},
                    )
                verdicts.append(CHECKS[claim.type](claim, obs))
    if not findings.empty and any(v.finding_ids for v in verdicts):
        groups = dict(zip(finding_ids(findings), evidence_ids(findings), strict=True))
        for verdict in verdicts:
            verdict.evidence_ids = join_ids([groups.get(i, "") for i in verdict.finding_ids])
    return verdicts


def claims_table(verdicts: Sequence[ClaimVerdict]) -> pd.DataFrame:
    """The report's "Claims vs observations" table: one row per claim and app, contradicted first."""
    frame = pd.DataFrame([v.row() for v in verdicts], columns=list(COLUMNS))
    order = {CONTRADICTED: 0, INCONCLUSIVE: 1, CONSISTENT: 2}
    return frame.sort_values("verdict", key=lambda s: s.map(order), kind="stable").reset_index(drop=True)


def known_identifiers(profile_values: dict | None) -> dict[str, list[str]]:
    """Hardware/OS identifier values from a profile (for `random_token`'s derived-from check)."""
    keys = ("imei", "android_id", "advertising_id", "oaid", "serial", "mac", "imsi", "iccid")
    out: dict[str, list[str]] = {}
    for key in keys:
        value = (profile_values or {}).get(key)
        if value:
            out[key] = [str(v) for v in (value if isinstance(value, list) else [value])]
    return out
