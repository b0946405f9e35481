"""The live inspector: bounded work per flow, and its worker process off the proxy's event loop."""

from __future__ import annotations

import asyncio
import dataclasses
import pickle
import signal
import time
from pathlib import Path

from mitmproxy.test import taddons, tflow

from phonehome.addons import inspector
from phonehome.analysis.records import Labels
from phonehome.analysis.sources.mitm import http_record

ANDROID_ID = "9774d56d682e549c"


def leak_flow(body: bytes = b""):
    f = tflow.tflow(resp=True)
    f.request.host = "sa.api.intl.miui.com"
    f.request.path = f"/sa?project=x&url=https%3A%2F%2Fexample.org%2Fsecret-page&android_id={ANDROID_ID}"
    if body:
        f.request.method = "POST"
        f.request.headers["Content-Type"] = "application/x-www-form-urlencoded"
        f.request.content = body
    return f


async def until(condition, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.01)


class Updates:
    """Stands in for mitmweb's view: collects the flows it is told changed."""

    def __init__(self) -> None:
        self.flows: list = []

    def update(self, flows) -> None:
        self.flows.extend(flows)


def test_large_bodies_are_not_decoded_live(monkeypatch) -> None:
    body = b"imei=490154203237518&pad=" + b"a" * 2000
    small, large = leak_flow(body), leak_flow(body)
    monkeypatch.setattr(inspector, "MAX_LIVE_BODY", len(body))  # at the bound: decoded
    summary, mark = inspector.summarise(small)
    assert mark and "imei" in summary and "not inspected" not in summary
    monkeypatch.setattr(inspector, "MAX_LIVE_BODY", len(body) - 1)  # over it: left to analyze
    summary, mark = inspector.summarise(large)
    assert mark and "imei" not in summary
    assert f"request body of {len(body)} bytes not inspected live" in summary
    assert "android_id" in summary and "url" in summary  # the query is still inspected
    # the same through the worker's payload
    payload, skipped = inspector.request_payload(large)
    assert skipped == len(body) and payload[0]["content"] == b""
    assert large.request.content == body  # the flow itself is untouched


def test_worker_payload_rebuilds_the_same_record() -> None:
    flows = [leak_flow(), leak_flow(b"a=1&b=%F0%9F%98%80"), tflow.tflow()]
    ip = tflow.tflow(resp=True)  # transparent/WireGuard: host is an IP, the name is in the SNI
    ip.request.host = "203.0.113.7"
    ip.request.headers.pop("Host", None)
    ip.client_conn.sni = "tracker.example.net"
    ip.metadata["phonehome"] = {"session": "s", "app": "com.x", "mode": "incognito", "phase": None}
    flows.append(ip)
    for f in flows:
        expected = dataclasses.replace(
            http_record(f, "live", Labels()), status=None, response_headers=(), response_size=None
        )
        payload, skipped = inspector.request_payload(f)
        assert skipped == 0
        assert inspector.record_from_payload(payload) == expected
        assert inspector.summarise_record(inspector.record_from_payload(payload)) == inspector.summarise(f)
    assert inspector.record_from_payload(inspector.request_payload(ip)[0]).host == "tracker.example.net"


def test_worker_annotates_flows_off_the_loop() -> None:
    async def go() -> None:
        insp, updates = inspector.Inspector(), Updates()
        with taddons.context(insp, updates):
            insp.running()
            assert insp.worker is not None
            flows = [leak_flow() for _ in range(5)] + [tflow.tflow(resp=True)]
            for f in flows:
                insp.response(f)
            assert not insp.pending  # handed over only after the responses have gone out ...
            await asyncio.sleep(0)
            assert not flows[0].comment  # ... and nothing decided on the event loop
            assert len(insp.pending) == len(flows)
            await until(lambda: not insp.pending)
            for f in flows[:5]:
                assert f.comment.startswith("phonehome: ") and "android_id" in f.comment
                assert f.marked == inspector.LEAK_TYPES_MARK
            assert not flows[5].comment and not flows[5].marked  # nothing to report
            await until(lambda: len(updates.flows) == 5)  # mitmweb is told, in one batch
            assert {id(f) for f in updates.flows} == {id(f) for f in flows[:5]}
            proc = insp.worker.proc
            insp.done()
            assert proc.poll() is not None

    asyncio.run(go())


def test_dead_worker_falls_back_to_inspecting_in_process(caplog) -> None:
    async def go() -> None:
        insp = inspector.Inspector()
        with taddons.context(insp):
            insp.running()
            assert insp.worker is not None
            first = leak_flow()
            insp.response(first)  # queued for the worker ...
            insp.worker.proc.send_signal(signal.SIGKILL)  # ... which dies before answering
            insp.worker.proc.wait()
            await until(lambda: insp.worker is None)
            later = leak_flow()
            insp.response(later)
            await until(lambda: bool(first.comment and later.comment))
            assert "android_id" in first.comment and "android_id" in later.comment
            assert insp.worker_failed and "worker process stopped" in caplog.text
            insp.done()

    asyncio.run(go())


def test_inspection_can_be_kept_in_process() -> None:
    async def go() -> None:
        insp = inspector.Inspector()
        with taddons.context(insp) as tctx:
            tctx.configure(insp, phonehome_inspect_worker=False)
            f = leak_flow()
            insp.response(f)
            assert insp.worker is None and not f.comment  # deferred until after the response
            await until(lambda: bool(f.comment))
            assert "android_id" in f.comment and f.marked
            tctx.configure(insp, phonehome_inspect=False)
            g = leak_flow()
            insp.response(g)
            await asyncio.sleep(0.1)
            assert not g.comment
            insp.done()

    asyncio.run(go())


def test_worker_exits_when_its_socket_closes() -> None:
    """As when the proxy is killed: the kernel closes the proxy's end, the worker ends."""

    async def go() -> None:
        insp = inspector.Inspector()
        with taddons.context(insp):
            insp.running()
            worker = insp.worker
            assert worker is not None and worker.sock is not None
            worker.loop.remove_reader(worker.sock)
            worker.sock.close()
            worker.sock = None
            deadline = time.monotonic() + 30
            while worker.proc.poll() is None:
                assert time.monotonic() < deadline, "worker still running"
                await asyncio.sleep(0.05)
            insp.done()

    asyncio.run(go())


def test_a_worker_that_cannot_start_leaves_no_socket_or_process(monkeypatch) -> None:
    """A closed loop refuses the worker's reader: its socket is closed and its child gone at once
    (not left for the garbage collector to warn about as an unclosed AF_UNIX socket)."""
    loop = asyncio.new_event_loop()
    loop.close()
    started = []
    real_start = inspector.start_child

    def start(*args, **kwargs):
        started.append(real_start(*args, **kwargs))
        return started[-1]

    monkeypatch.setattr(inspector, "start_child", start)
    try:
        inspector.Worker(loop, lambda *a: None, lambda: None)
    except RuntimeError:
        pass
    else:
        raise AssertionError("a closed loop accepted the worker")
    ((sock, proc),) = started
    assert sock.fileno() == -1  # closed
    assert proc.poll() is not None


def read_back(path) -> list:
    from mitmproxy import io

    with open(path, "rb") as fo:
        return list(io.FlowReader(fo).stream())


def fed_pair(tmp_path, tctx, session: str):
    """An inspector fed by a recorder whose writer process inspects, as recorder.py wires them."""
    insp = tctx.master.addons.get("inspector")
    rec = tctx.master.addons.get("recorder")
    tctx.configure(rec, phonehome_dir=str(tmp_path), phonehome_session=session)
    insp.running()
    rec.running()
    assert rec.writer is not None and rec.writer.reading
    return insp, rec


def finish(insp, rec, flow) -> None:
    """The hooks in the order of recorder.py's addon list: inspector, then recorder."""
    rec.request(flow)
    insp.response(flow)
    rec.response(flow)


def test_the_writer_process_inspects_what_it_writes(tmp_path) -> None:
    """With the recorder, each flow is handed over once: written, then inspected, by the writer
    process; no inspector worker is started, the summaries come back as annotations (after the
    flow was written: flows.mitm holds no comment)."""
    from phonehome.addons import recorder

    async def go() -> None:
        insp = inspector.Inspector()
        rec, updates = recorder.Recorder(insp), Updates()
        with taddons.context(insp, rec, updates) as tctx:
            insp, rec = fed_pair(tmp_path, tctx, "fed")
            flows = [leak_flow() for _ in range(5)] + [tflow.tflow(resp=True)]
            for f in flows:
                finish(insp, rec, f)
            assert not insp.pending and len(rec.to_inspect) == len(flows)  # taken by the feed
            await asyncio.sleep(0)
            assert len(rec.inspecting) == len(flows) and not rec.to_inspect  # handed over once
            await until(lambda: not rec.inspecting)
            for f in flows[:5]:
                assert f.comment.startswith("phonehome: ") and "android_id" in f.comment
                assert f.marked == inspector.LEAK_TYPES_MARK
            assert not flows[5].comment and not flows[5].marked
            await until(lambda: len(updates.flows) == 5)
            assert insp.worker is None  # no second process, no second hand-off
            rec.done()
            insp.done()
        written = read_back(tmp_path / "fed" / "flows.mitm")
        assert [f.id for f in written] == [f.id for f in flows]
        assert not any(f.comment or f.marked for f in written)

    asyncio.run(go())


def test_flows_the_writer_does_not_inspect_take_the_inspectors_own_route(tmp_path) -> None:
    """A flow too large to hand over is written by the proxy and inspected by the inspector's own
    worker; flows waiting in a writer that dies are inspected there too."""
    from phonehome.addons import dumpwriter, recorder

    async def go() -> None:
        insp = inspector.Inspector()
        rec = recorder.Recorder(insp)
        with taddons.context(insp, rec) as tctx:
            insp, rec = fed_pair(tmp_path, tctx, "route")
            big = leak_flow(b"a=" + b"x" * (2 * dumpwriter.MAX_MESSAGE))
            finish(insp, rec, big)
            await until(lambda: bool(big.comment))
            assert "android_id" in big.comment and insp.worker is not None  # started when needed
            writer = rec.writer
            writer.proc.send_signal(signal.SIGSTOP)  # the writer takes flows but never answers ...
            waiting = [leak_flow() for _ in range(3)]
            for f in waiting:
                finish(insp, rec, f)
            await asyncio.sleep(0)
            assert len(rec.inspecting) == 3
            writer.proc.send_signal(signal.SIGKILL)  # ... and dies
            await until(lambda: not rec.inspecting and all(f.comment for f in waiting))
            assert all("android_id" in f.comment for f in waiting)
            rec.done()
            insp.done()
        assert {f.id for f in read_back(tmp_path / "route" / "flows.mitm")} == {f.id for f in [big, *waiting]}

    asyncio.run(go())


def test_a_writer_too_far_behind_hands_flows_back_uninspected(monkeypatch) -> None:
    from phonehome.addons import dumpwriter

    sent: list[bytes] = []
    monkeypatch.setattr(dumpwriter, "MAX_BEHIND", 3)
    inspection = dumpwriter._Inspection(sent.append)
    flows = [leak_flow() for _ in range(5)]
    for f in flows:
        inspection.add(f, 100)
    assert [f.id for f, _ in inspection.waiting] == [f.id for f in flows[2:]]
    inspection.inspect_one()
    inspection.hand_back_all()
    (reply,) = sent
    results = pickle.loads(reply[1:])
    assert reply[:1] == b"R"
    assert [(r[0], r[1]) for r in results[:2]] == [(flows[0].id, None), (flows[1].id, None)]
    assert results[2][0] == flows[2].id and "android_id" in results[2][1] and results[2][2]
    assert [(r[0], r[1]) for r in results[3:]] == [(flows[3].id, None), (flows[4].id, None)]


def test_mitmweb_is_told_of_annotations_only_when_something_listens(monkeypatch) -> None:
    """mitmdump has no `update` addon: the batch UpdateHook is then not triggered at all."""

    async def go() -> None:
        insp = inspector.Inspector()
        with taddons.context(insp) as tctx:
            triggered: list = []
            real = tctx.master.addons.trigger
            monkeypatch.setattr(
                tctx.master.addons, "trigger", lambda event: (triggered.append(event), real(event))
            )
            f = leak_flow()
            insp.annotate(f, "phonehome: x", True, True)
            await asyncio.sleep(3 * inspector.UPDATE_DELAY)
            assert not triggered and f.comment == "phonehome: x" and insp.update_timer is None
            updates = Updates()
            tctx.master.addons.add(updates)
            insp.annotate(f, "phonehome: y", True, True)
            await until(lambda: bool(updates.flows))
            assert [type(e).__name__ for e in triggered] == ["UpdateHook"] and updates.flows == [f]
            insp.done()

    asyncio.run(go())


def test_mitmweb_shows_summaries_made_in_the_writer_process(tmp_path) -> None:
    """Real mitmweb, real TLS: the leak's summary and mark reach mitmweb's flow list, made by the
    recorder's writer process (the proxy's only child: no inspector worker)."""
    import requests

    from phonehome.addons import guard
    from tests.support_proxy import MITMWEB, ROOT, children, free_port, mitmdump, tls_upstream

    web_port, password = free_port(), "h5-test-password"
    opts = ["--set", f"phonehome_dir={tmp_path / 'caps'}", "--set", "phonehome_session=web"]
    opts += ["--web-port", str(web_port), "--no-web-open-browser"]
    headers = {}
    if guard.web_has_token():  # mitmproxy >= 11.1.2 asks for a token
        opts += ["--set", f"web_password={password}"]
        headers = {"Authorization": f"Bearer {password}"}
    addons = [ROOT / "addons" / "recorder.py", ROOT / "tests" / "support_redirect_addon.py"]

    def web_flows() -> list:
        try:
            return requests.get(f"http://127.0.0.1:{web_port}/flows", headers=headers, timeout=5).json()
        except (requests.RequestException, ValueError):
            return []

    with (
        tls_upstream(tmp_path) as up,
        mitmdump(tmp_path / "conf", up, addons, opts, tool=MITMWEB) as (port, proc),
        requests.Session() as s,
    ):
        s.trust_env = False
        s.proxies = {"https": f"http://127.0.0.1:{port}"}
        s.verify = str(tmp_path / "conf" / "mitmproxy-ca-cert.pem")
        s.get(
            "https://sa.api.intl.miui.com/sa?project=x&url=https%3A%2F%2Fexample.org%2Fp"
            f"&android_id={ANDROID_ID}"
        ).raise_for_status()
        deadline = time.monotonic() + 60
        while not any("android_id" in (f.get("comment") or "") for f in web_flows()):
            assert time.monotonic() < deadline, f"no summary in mitmweb: {web_flows()}"
            time.sleep(0.1)
        (flow,) = [f for f in web_flows() if "android_id" in (f.get("comment") or "")]
        assert flow["marked"] and flow["comment"].startswith("phonehome: ")  # (mitmweb shows :warning: as ⚠)
        kids = children(proc.pid)
        assert len(kids) == 1 and b"dumpwriter" in (Path(f"/proc/{kids[0]}/cmdline").read_bytes())


def test_inspection_kept_in_the_proxy_is_not_fed_to_the_writer(tmp_path) -> None:
    """phonehome_inspect_worker=false means in the proxy process, also with the recorder's writer."""
    from phonehome.addons import recorder

    async def go() -> None:
        insp = inspector.Inspector()
        rec = recorder.Recorder(insp)
        with taddons.context(insp, rec) as tctx:
            # the recorder opens a session on its first configure: in tmp_path, never ./captures
            tctx.configure(insp, phonehome_inspect_worker=False, phonehome_dir=str(tmp_path))
            insp, rec = fed_pair(tmp_path, tctx, "inproc")
            f = leak_flow()
            finish(insp, rec, f)
            assert not rec.to_inspect
            await until(lambda: bool(f.comment))
            assert "android_id" in f.comment and insp.worker is None and not rec.inspecting
            rec.done()
            insp.done()

    asyncio.run(go())
