"""Records to table rows: decode, classify, and one tuple per flow, finding and contact.

The one place a record becomes rows, whichever path read it: the pipeline feeds a RowCollector
record by record in this process; analysis.parallel gives each worker process its own, built
from the same RowSettings, and sends back only its Rows. Rows are plain tuples in the column
order of analysis.findings (FLOWS_COLUMNS, FINDINGS_COLUMNS, CONTACTS_COLUMNS): cheap to build,
to pickle between processes and to turn into tables at the end; the parent packs the findings
of each range into Arrow chunks as they arrive (Rows.pack).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, fields
from operator import attrgetter

from phonehome.analysis.classify import Endpoint, EndpointClassifier, classify_request
from phonehome.analysis.classify.endpoints import default_classifier
from phonehome.analysis.decode import decode_request
from phonehome.analysis.decode.model import DecodedRequest
from phonehome.analysis.decode.request import decode_value
from phonehome.analysis.findings import FINDINGS_COLUMNS, Finding
from phonehome.analysis.profile import Profile
from phonehome.analysis.records import ContactRecord, HttpRecord, safe_text

# A finding's values in column order; dataclasses.astuple deep-copies and cost a quarter of a run.
_finding_row = attrgetter(*(f.name for f in fields(Finding)))
# Columns whose values repeat over many rows: each distinct value stored once (RowCollector._strings).
_SHARED_COLUMNS = ("session", "app", "mode", "method", "host", "url", "location", "field", "encodings")
_SHARED_COLUMNS += ("value",)  # a device's identifiers recur in request after request
_SHARED_COLUMNS += ("phase",)  # one label over a phase's requests
_FINDING_SHARED = tuple(FINDINGS_COLUMNS.index(c) for c in _SHARED_COLUMNS)
_APP = FINDINGS_COLUMNS.index("app")
# A request's findings share their first columns (session ... url: the request's own) and the last
# (phase): made safe and shared once per run of equal heads, the seven between them per finding
# (add_finding_rows).
_HEAD = FINDINGS_COLUMNS.index("location")
_HEAD_SHARED = tuple(i for i in _FINDING_SHARED if i < _HEAD)
_TAIL_COLUMNS = ("location", "field", "encodings", "data_type", "value", "confidence", "evidence")
_TAIL_SHARED = {"location", "field", "encodings", "value"}  # add_finding_rows spells the tail out
_TAIL_END = _HEAD + len(_TAIL_COLUMNS)
if (
    FINDINGS_COLUMNS[_HEAD:_TAIL_END] != _TAIL_COLUMNS
    or FINDINGS_COLUMNS[_TAIL_END:] != ("phase",)
    or _APP >= _HEAD
    or {*_SHARED_COLUMNS} & {*_TAIL_COLUMNS} != _TAIL_SHARED
):
    raise ImportError(f"rows.py: findings columns changed ({FINDINGS_COLUMNS}); update add_finding_rows")


@dataclass(frozen=True, slots=True)
class RowSettings:
    """What decides the rows besides the records: all a worker process needs (picklable)."""

    profile: Profile | None = None
    endpoint_lists: tuple[str, ...] = ()  # user lists (hosts, Disconnect, DDG TDS) on top of ours


@dataclass(slots=True)
class Rows:
    """Table rows, in record order: what a run (or one byte range of it) produced."""

    flows: list[tuple] = field(default_factory=list)
    _findings: list[tuple] = field(default_factory=list)
    contacts: list[tuple] = field(default_factory=list)
    # findings rows already packed into Arrow chunks (pack()), which come before `_findings`
    packed_findings: list = field(default_factory=list)

    @property
    def findings(self) -> list[tuple]:
        """Every findings row as a tuple (packed chunks unpacked first: for tests and callers that
        want rows; the tables are built from the chunks without this)."""
        if self.packed_findings:
            from phonehome.analysis.arrow_tables import unpack_findings

            self._findings[:0] = unpack_findings(self.packed_findings)
            self.packed_findings = []
        return self._findings

    @findings.setter
    def findings(self, rows: list[tuple]) -> None:
        self._findings, self.packed_findings = rows, []

    def take_findings(self) -> tuple[list, list[tuple]]:
        """(packed chunks, rows after them), handed over without unpacking; both emptied here."""
        taken = (self.packed_findings, self._findings)
        self.packed_findings, self._findings = [], []
        return taken

    def extend(self, other: Rows) -> None:
        if other.packed_findings:
            self.pack()  # what this holds comes first
            self.packed_findings.extend(other.packed_findings)
        self.flows.extend(other.flows)
        self._findings.extend(other._findings)
        self.contacts.extend(other.contacts)

    def pack(self) -> None:
        """Turn the findings rows into compact Arrow chunks (analysis.arrow_tables.pack_findings),
        emptying `findings`: the parent packs each range's rows as they arrive, so a big run
        never holds every finding as a tuple (a tenth of the memory). Imports pyarrow: only the
        process that builds the tables calls it, never a worker."""
        if self._findings:
            from phonehome.analysis.arrow_tables import pack_findings

            self.packed_findings.extend(pack_findings(self._findings))


@dataclass(slots=True)
class RowCollector:
    """Turns records into rows. One per process; holds the per-run caches (endpoints, strings)."""

    settings: RowSettings = field(default_factory=RowSettings)
    rows: Rows = field(default_factory=Rows)
    _endpoints: dict[tuple[str, str | None], Endpoint] = field(default_factory=dict)
    _classifier: EndpointClassifier | None = None
    # one str object per distinct label, host, field path...: rows repeat them, and a worker's
    # pickle then carries each once (the parent's rows at 100,000 flows: 420 MB -> see docs)
    _strings: dict[str, str] = field(default_factory=dict)
    # findings packed into Arrow chunks (Rows.pack) whenever this many are held as tuples; 0 never
    # (a worker: its rows go back as tuples). The process that builds the tables sets it.
    pack_every: int = 0

    def load_endpoint_lists(self) -> None:
        """Read the user's endpoint lists now, so that a bad list fails before any capture is read."""
        self.endpoint("", None)

    def endpoint(self, host: str, app: str | None) -> Endpoint:
        key = (host, app)
        found = self._endpoints.get(key)
        if found is None:
            if self._classifier is None:
                lists = list(self.settings.endpoint_lists)
                self._classifier = EndpointClassifier(lists) if lists else default_classifier()
            found = self._endpoints[key] = self._classifier.classify(host, app)
        return found

    def take(self) -> Rows:
        """The rows so far, handed over; the collector starts afresh (its caches kept, except
        the shared strings, which only save memory within one hand-over)."""
        rows, self.rows = self.rows, Rows()
        self._strings.clear()
        return rows

    def add(self, record: HttpRecord | ContactRecord) -> None:
        if isinstance(record, HttpRecord):
            self.add_http(record)
        else:
            self.add_contact(record)

    def add_http(self, record: HttpRecord) -> None:
        labels = record.labels
        endpoint = self.endpoint(record.host, labels.app)
        decoded = decode_request(record)
        if record.ws_messages:
            add_ws_messages(decoded, record.ws_messages)
        findings = classify_request(record, decoded, endpoint, self.settings.profile)
        share = self._strings.setdefault
        finding_rows = self.rows._findings  # not .findings, which would unpack the packed chunks
        add_finding_rows(findings, share, finding_rows)
        if self.pack_every and len(finding_rows) >= self.pack_every:
            self.rows.pack()
        host = share(record.host, record.host)
        self.rows.flows.append(
            _safe_row(
                (
                    share(labels.session, labels.session),
                    labels.app or "",
                    share(labels.mode, labels.mode),
                    labels.phase or "",
                    record.flow_id,
                    record.timestamp,
                    share(record.method, record.method),
                    host,
                    endpoint.site,
                    endpoint.owner,
                    endpoint.category,
                    endpoint.party,
                    record.url,
                    record.status,
                    len(record.request_body) + sum(len(m) for _, m in record.ws_messages),
                    record.response_size,
                    record.header("content-type") or "",
                    record.response_header("content-type") or "",
                    len(decoded.fields),
                    decoded.truncated,
                    record.source,
                    decoded.opaque_bytes,
                    record.tls_version or "",
                    record.tls_cipher or "",
                )
            )
        )

    def add_contact(self, record: ContactRecord) -> None:
        labels = record.labels
        endpoint = self.endpoint(record.host, labels.app)
        self.rows.contacts.append(
            _safe_row(
                (
                    labels.session,
                    labels.app or "",
                    labels.mode,
                    labels.phase or "",
                    record.timestamp,
                    record.host,
                    endpoint.site,
                    endpoint.owner,
                    endpoint.category,
                    record.kind,
                    record.detail,
                    record.server_ip,
                    record.source,
                )
            )
        )


def add_finding_rows(findings: list[Finding], share: Callable[[str, str], str], out: list[tuple]) -> None:
    """Append each finding's row to `out`: every string valid UTF-8 (_safe_row), app None as "",
    the strings of _SHARED_COLUMNS passed through `share` (the collector's dict.setdefault).

    A request's findings share their first columns (the request's own: session ... url), so
    those are made safe and shared once per run of equal heads, and only the last seven columns
    per finding, their ASCII test done on their concatenation (one C call) instead of per cell.
    """
    head_of: tuple | None = None  # the head columns as the findings hold them
    head: tuple = ()  # and as the rows hold them
    phase_of: object = None  # the phase as the findings hold it
    phase = ""  # and as the rows hold it
    for finding in findings:
        row = _finding_row(finding)
        if row[:_HEAD] != head_of or row[_TAIL_END] != phase_of:  # the request's first finding, in practice
            head_of = row[:_HEAD]
            cells = list(_safe_row(head_of))
            if cells[_APP] is None:  # as the table holds it (findings.normalise_findings)
                cells[_APP] = ""
            for i in _HEAD_SHARED:
                cells[i] = share(cells[i], cells[i])
            head = tuple(cells)
            phase_of = row[_TAIL_END]
            (phase,) = _safe_row(("" if phase_of is None else phase_of,))
            phase = share(phase, phase)
        location, path, encodings, data_type, value, confidence, evidence = row[_HEAD:_TAIL_END]
        try:
            ascii = (location + path + encodings + data_type + value + confidence + evidence).isascii()
        except TypeError:  # a cell that is not a string
            ascii = False
        if not ascii:
            location, path, encodings, data_type, value, confidence, evidence = _safe_row(
                row[_HEAD:_TAIL_END]
            )
        out.append(
            (
                *head,
                share(location, location),
                share(path, path),
                share(encodings, encodings),
                data_type,
                share(value, value),
                confidence,
                evidence,
                phase,
            )
        )


#: WebSocket messages decoded per flow; a long-lived socket beyond this is marked truncated.
MAX_WS_MESSAGES = 2000


def add_ws_messages(decoded: DecodedRequest, messages: tuple[tuple[int, bytes], ...]) -> None:
    """Decode a WebSocket's client messages like bodies (location `body`, field path `ws[<i>]`,
    i the message's index in the flow) into `decoded`: what the app sent over a WebSocket is
    payload sent home. Each message is bounded by the decoder's own limits."""
    for i, content in messages[:MAX_WS_MESSAGES]:
        part = decode_value(content, location="body", path=f"ws[{i}]")
        decoded.fields.extend(part.fields)
        decoded.truncated = decoded.truncated or part.truncated
        decoded.notes.extend(part.notes)
        decoded.opaque_bytes += part.opaque_bytes
    if len(messages) > MAX_WS_MESSAGES:
        decoded.truncated = True
        decoded.notes.append(
            f"WebSocket: only the first {MAX_WS_MESSAGES} of {len(messages)} messages decoded"
        )


def _safe_row(row: tuple) -> tuple:
    """The row with every string made valid UTF-8 (Parquet and reports need it)."""
    for value in row:  # the common case, all ASCII, returns the row as it is (4x faster)
        if value.__class__ is str and not value.isascii():
            return tuple(safe_text(v) if isinstance(v, str) else v for v in row)
    return row
