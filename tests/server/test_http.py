"""The HTTP service end to end: a real httpx client against uvicorn on 127.0.0.1, on every store."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService
from turnlog.engine import ToolRegistry, TurnFailed, TurnFinalized, replay
from turnlog.projections import fold_rows, project

from .conftest import frames_of, ids_of, serving

WORDS = " ".join(f"word{i}" for i in range(40))


def tools() -> ToolRegistry:
    registry = ToolRegistry()

    async def lookup(key: str) -> dict[str, Any]:
        return {"key": key, "value": key.upper()}

    def admin_reset() -> str:
        return "reset done"

    registry.register(lookup)
    registry.register(admin_reset, permission_level=2)
    return registry


def service(store: Any, *, delay: float = 0.0, **config: Any) -> TurnService:
    auth = TokenAuth(
        {
            "tok-a": Principal("acme", level=1, subject="ann"),
            # ann with an elevated token: a turn in her own conversation (another subject may not write it)
            "tok-a-admin": Principal("acme", level=2, subject="ann"),
            "tok-b": Principal("globex", level=1, subject="bob"),
        }
    )
    cfg = ServerConfig(**{"recover_grace": 0.0, **config})
    return TurnService(store.log, store.messages, EchoLLM(delay=delay), tools=tools(), authenticate=auth, config=cfg)


A = {"authorization": "Bearer tok-a"}
B = {"authorization": "Bearer tok-b"}


async def new_conversation(client: httpx.AsyncClient, headers: dict[str, str] = A, **body: Any) -> str:
    r = await client.post("/conversations", json=body, headers=headers)
    assert r.status_code == 201, r.text
    return r.json()["id"]


async def live_turn(
    client: httpx.AsyncClient, conv: str, body: dict[str, Any], mode: str = "delta", headers=A
) -> bytes:
    async with client.stream("POST", f"/conversations/{conv}/turns?mode={mode}", json=body, headers=headers) as r:
        assert r.status_code == 200, await r.aread()
        assert r.headers["content-type"].startswith("text/event-stream")
        return await r.aread()


@pytest.mark.parametrize("mode", ["delta", "full"])
async def test_turns_over_http_equal_the_replay_and_the_rows(store: Any, mode: str) -> None:
    # A client may set the system prompt only where the server's policy allows it.
    async with serving(service(store, allow_system_prompt=True)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await new_conversation(client, system_prompt="Be brief.")
        live = await live_turn(client, conv, {"message": "hello there", "thinking": True}, mode)
        assert live.startswith(b"retry: 2000\n\n")
        live += await live_turn(
            client, conv, {"message": '/call lookup {"key": "k1"}', "enabled_tools": ["lookup"]}, mode
        )
        events = [rec async for rec in replay(store.log, conv)]
        # Live frames are exactly the replayed ones; the events endpoint serves the same bytes.
        assert frames_of(live) == project(events, mode)
        r = await client.get(f"/conversations/{conv}/events?mode={mode}", headers=A)
        assert frames_of(r.content) == project(events, mode)
        # The rows served are the rows the log rebuilds.
        r = await client.get(f"/conversations/{conv}/messages", headers=A)
        served = r.json()["messages"]
        rebuilt = fold_rows(conv, events)
        assert [(m["id"], m["role"], m["status"], json.dumps(m["content"], ensure_ascii=False)) for m in served] == [
            (row.id, row.role, row.status, row.content) for row in rebuilt
        ]
        assert served[1]["content"]["text"] == "hello there"
        assert "value" in served[3]["content"]["text"] and "K1" in served[3]["content"]["text"]
        r = await client.get(f"/conversations/{conv}/verify", headers=A)
        assert r.json() == {"ok": True, "events": len(events), "broken": []}
        # Every stream has ended: the server keeps no follower state for the conversation.
        assert conv not in store.log._followers and conv not in store.log._waiters


async def test_resume_from_last_event_id_gives_the_rest_once(store: Any) -> None:
    async with serving(service(store, delay=0.005)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await new_conversation(client)
        got = b""
        async with client.stream("POST", f"/conversations/{conv}/turns", json={"message": WORDS}, headers=A) as r:
            async for chunk in r.aiter_raw():
                got += chunk
                if len(frames_of(got)) >= 5:
                    break  # the browser's connection drops mid-turn
        kept = frames_of(got)
        # A cut can fall inside a frame: the client keeps whole frames and resumes after the last.
        last_id = ids_of(kept)[-1]
        r = await client.get(f"/conversations/{conv}/events", headers={**A, "last-event-id": str(last_id)})
        rest = frames_of(r.content)
        assert rest, "the turn's remaining frames"
        events = [rec async for rec in replay(store.log, conv)]
        assert kept + rest == project(events)
        assert isinstance(events[-1].event, TurnFinalized)
        # ?after= is the same as the header.
        r2 = await client.get(f"/conversations/{conv}/events?after={last_id}", headers=A)
        assert frames_of(r2.content) == rest


async def test_a_dropped_client_does_not_stop_its_turn(store: Any) -> None:
    async with serving(service(store, delay=0.01)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await new_conversation(client)
        async with client.stream("POST", f"/conversations/{conv}/turns", json={"message": WORDS}, headers=A) as r:
            async for _ in r.aiter_raw():
                break
        # While it runs a second turn is refused; the events stream follows it to its end.
        r = await client.post(f"/conversations/{conv}/turns", json={"message": "again"}, headers=A)
        assert r.status_code == 409
        assert r.json()["error"]["code"] == "turn_in_progress"
        r = await client.get(f"/conversations/{conv}/events", headers=A)
        assert b"event: done" in r.content
        last = await store.log.last(conv)
        assert isinstance(last.event, TurnFinalized)
        rows = (await client.get(f"/conversations/{conv}/messages", headers=A)).json()["messages"]
        assert rows[-1]["content"]["text"] == WORDS and rows[-1]["status"] == "finalized"


async def test_heartbeats_while_the_model_is_silent(store: Any) -> None:
    async with (
        serving(service(store, delay=0.35, heartbeat=0.1)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        conv = await new_conversation(client)
        body = await live_turn(client, conv, {"message": "slow words"})
        assert body.count(b": keep-alive\n\n") >= 2
        assert len(frames_of(body)) == 3  # two words and done


async def test_tenants_see_only_their_own_conversations(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        theirs = await new_conversation(client, B)
        await live_turn(client, theirs, {"message": "private"}, headers=B)
        before = [rec async for rec in replay(store.log, theirs)]
        probes = [
            ("POST", f"/conversations/{theirs}/turns", {"message": "hi"}),
            ("GET", f"/conversations/{theirs}/events", None),
            ("GET", f"/conversations/{theirs}/messages", None),
            ("GET", f"/conversations/{theirs}/verify", None),
        ]
        for method, path, body in probes:
            r = await client.request(method, path, json=body, headers=A)
            missing = await client.request(method, path.replace(theirs, "conv_nope"), json=body, headers=A)
            assert r.status_code == 404, (path, r.text)
            # Indistinguishable from a conversation that does not exist (but for the id).
            assert r.json()["error"]["code"] == missing.json()["error"]["code"] == "not_found"
            assert "private" not in r.text
            if method == "GET":  # the owner still can
                assert (await client.get(path, headers=B)).status_code == 200
        assert [rec async for rec in replay(store.log, theirs)] == before
        # No token, a wrong token, a wrong scheme: 401 with a challenge.
        for headers in ({}, {"authorization": "Bearer nope"}, {"authorization": "Basic dG9rLWE="}):
            r = await client.get(f"/conversations/{theirs}/messages", headers=headers)
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            assert r.json()["error"]["code"] == "unauthorized"


async def test_the_principals_level_reaches_the_tool_check(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await new_conversation(client)
        body = {"message": "/call admin_reset {}", "enabled_tools": ["admin_reset"]}
        denied = await live_turn(client, conv, body)
        assert b'"success":false' in denied and b"permission denied" in denied
        admin = {"authorization": "Bearer tok-a-admin"}
        allowed = await live_turn(client, conv, body, headers=admin)
        assert b'"content":"reset done","success":true' in allowed
        started = [rec.event for rec in [r async for r in replay(store.log, conv)] if rec.type == "turn_started"]
        assert [s.permission_level for s in started] == [1, 2]
        # The level also decides what the model is offered.
        assert started[0].tools == [] and [t["function"]["name"] for t in started[1].tools] == ["admin_reset"]


async def test_errors_are_json_with_clear_messages(store: Any) -> None:
    async with serving(service(store, max_body=2000)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await new_conversation(client)
        turns = f"/conversations/{conv}/turns"

        async def error(r: httpx.Response, status: int, code: str, words: str) -> None:
            assert r.status_code == status, r.text
            assert r.headers["content-type"] == "application/json"
            err = r.json()["error"]
            assert err["status"] == status and err["code"] == code
            assert words in err["message"], err["message"]

        await error(await client.post(turns, content=b"{not json", headers=A), 422, "invalid_body", "not valid JSON")
        await error(await client.post(turns, json={}, headers=A), 422, "invalid_body", "message")
        await error(await client.post(turns, json={"message": 3}, headers=A), 422, "invalid_body", "Expected `str`")
        await error(
            await client.post(turns, json={"message": "x", "colour": 1}, headers=A), 422, "invalid_body", "colour"
        )
        await error(
            await client.post(turns + "?mode=fancy", json={"message": "x"}, headers=A), 422, "invalid_query", "fancy"
        )
        await error(
            await client.get(f"/conversations/{conv}/events?after=x", headers=A), 422, "invalid_query", "integer"
        )
        await error(
            await client.post("/conversations", json={"provider": "nobody"}, headers=A), 422, "invalid_body", "nobody"
        )
        await error(
            await client.post(turns, json={"message": "x" * 3000}, headers=A), 413, "too_large", "2000-byte limit"
        )

        async def chunked() -> Any:
            for _ in range(10):
                yield b"x" * 500  # no Content-Length: the limit holds while reading

        await error(await client.post(turns, content=chunked(), headers=A), 413, "too_large", "limit")
        await error(await client.get("/conversations/conv_nope/messages", headers=A), 404, "not_found", "conv_nope")
        await error(await client.get("/nowhere", headers=A), 404, "http_error", "Not Found")
        await error(await client.delete(turns, headers=A), 405, "http_error", "Method Not Allowed")
        # None of it wrote anything.
        assert [rec.type async for rec in replay(store.log, conv)] == ["conversation_created"]


class GatedEcho(EchoLLM):
    """Answers only once the gate opens: the test decides how long the turn stays live."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()

    async def stream(self, body: bytes) -> Any:
        await self.gate.wait()
        async for chunk in super().stream(body):
            yield chunk


async def test_fifty_clients_racing_on_one_server(store: Any) -> None:
    llm = GatedEcho()
    svc = TurnService(store.log, store.messages, llm, config=ServerConfig(recover_grace=0))
    async with (
        serving(svc) as url,
        httpx.AsyncClient(base_url=url, limits=httpx.Limits(max_connections=60), timeout=30) as client,
    ):
        conv = await new_conversation(client, {})
        refused = 0

        async def attempt(n: int) -> tuple[int, bytes]:
            nonlocal refused
            body = {"message": f"m{n} a b c"}
            async with client.stream("POST", f"/conversations/{conv}/turns", json=body) as r:
                if r.status_code == 409:
                    refused += 1
                    if refused == 49:
                        llm.gate.set()  # every loser has its answer: let the winner's model talk
                return r.status_code, await r.aread()

        results = await asyncio.gather(*(attempt(n) for n in range(50)))
        assert sorted(code for code, _ in results) == [200] + [409] * 49
        winner = next(body for code, body in results if code == 200)
        events = [rec async for rec in replay(store.log, conv)]  # the state machine checks every event
        assert [rec.type for rec in events].count("turn_started") == 1
        assert isinstance(events[-1].event, TurnFinalized)
        assert frames_of(winner) == project(events)


async def test_idle_conversation_events_end_after_the_replay(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await new_conversation(client)
        r = await client.get(f"/conversations/{conv}/events", headers=A)
        assert r.content == b"retry: 2000\n\n"
        await live_turn(client, conv, {"message": "one two"})
        last = (await store.log.last(conv)).version
        r = await client.get(f"/conversations/{conv}/events", headers={**A, "last-event-id": str(last)})
        assert r.content == b"retry: 2000\n\n"


async def test_shutdown_cancels_running_turns_and_keeps_their_output(store: Any) -> None:
    svc = service(store, delay=0.05, shutdown_grace=0.2)
    async with serving(svc) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await new_conversation(client)
        async with client.stream("POST", f"/conversations/{conv}/turns", json={"message": WORDS}, headers=A) as r:
            async for _ in r.aiter_raw():
                break
    last = await store.log.last(conv)
    assert isinstance(last.event, TurnFailed) and last.event.reason == "cancelled"
    rows = [r async for r in replay(store.log, conv)]
    assert any(rec.type == "text_delta" for rec in rows)
    assert not svc.running


async def test_the_sweep_spares_a_silent_turn_this_server_runs(store: Any) -> None:
    # The model is silent for longer than the grace period between deltas: the sweep must not
    # take the turn for an orphan, because this server is running it.
    async with (
        serving(service(store, delay=0.5, recover_grace=0.2)) as url,
        httpx.AsyncClient(base_url=url) as client,
    ):
        conv = await new_conversation(client)
        body = await live_turn(client, conv, {"message": "slow answer here"})
        assert b"event: done" in body and b"interrupted" not in body
    assert isinstance((await store.log.last(conv)).event, TurnFinalized)


async def test_a_live_turn_swept_by_another_server_stops_and_the_log_stays_valid(store: Any) -> None:
    from turnlog.engine import recover, verify

    svc = service(store, delay=0.2)
    async with serving(svc) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await new_conversation(client)
        got = b""
        swept = False
        async with client.stream("POST", f"/conversations/{conv}/turns", json={"message": WORDS}, headers=A) as r:
            async for chunk in r.aiter_raw():
                got += chunk
                if not swept and b"event: process_step" in got:
                    swept = True
                    # Another server, with too short a grace, takes this turn for an orphan.
                    assert [x.stream_id for x in await recover(store.log)] == [conv]
        # The client saw the turn end as interrupted; the turn's own next append was refused.
        assert frames_of(got)[-1].split(b"\n")[1] == b"event: error" and b"interrupted" in got
        for _ in range(100):
            if not svc.running:
                break
            await asyncio.sleep(0.05)
        assert not svc.running
        events = [rec async for rec in replay(store.log, conv)]  # still a legal log
        assert isinstance(events[-1].event, TurnFailed) and events[-1].event.reason == "interrupted"
        assert (await verify(store.log, conv)).ok


async def test_a_forged_log_is_not_served(store: Any, caplog: pytest.LogCaptureFixture) -> None:
    from turnlog.engine import NewEvent, TextDelta

    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        conv = await new_conversation(client)
        await live_turn(client, conv, {"message": "real words"})
        head = (await store.log.last(conv)).version
        # A delta appended after the turn ended: no legal state accepts it.
        await store.log.append(
            conv, [NewEvent(TextDelta(1, " forged"), "turn_x")], head, recorded_at="2026-01-01T00:00:00Z"
        )
        r = await client.get(f"/conversations/{conv}/events", headers=A)
        assert r.status_code == 200
        assert b"forged" not in r.content
        assert "cannot be replayed" in caplog.text
        r = await client.get(f"/conversations/{conv}/verify", headers=A)
        assert r.status_code == 200  # the chain is intact: the forgery is in what was chained
