"""POST /conversations/{id}/fork over real HTTP (uvicorn on 127.0.0.1, httpx), on memory, SQLite and
PostgreSQL: 201 with the fork point; the fork's first event names the parent, the version and the
parent's hash there; the list shows its parent; a turn on the fork repeats the parent's history up
to the fork point; verify checks the link; a version inside a turn is 422 invalid_fork; tenancy as
everywhere (404 not yours, 403 an auditor who may read but not write)."""

from __future__ import annotations

from typing import Any

import httpx
from turnlog.engine import ConversationCreated, ForkPoint

from ..conversations.test_http import auth, create, listed, service, settled, turn
from ..server.conftest import serving


async def test_fork_regenerate_and_edit_over_http(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        parent = await create(client, "ann", "trip")
        await turn(client, "ann", parent, "first question")
        boundary = (await store.log.last(parent)).version
        await turn(client, "ann", parent, "second question")
        # Regenerate the last answer: fork at the boundary before the last turn, send it again.
        r = await client.post(f"/conversations/{parent}/fork", json={"at_version": boundary}, headers=auth("ann"))
        assert r.status_code == 201, r.text
        fork = r.json()["id"]
        parent_event = (await store.log.read(parent, boundary - 1, 1))[0]
        assert r.json()["parent"] == {"conversation_id": parent, "version": boundary, "hash": parent_event.hash}
        assert r.headers["location"].endswith(f"/conversations/{fork}")
        created = (await store.log.read(fork, 0, 1))[0].event
        assert isinstance(created, ConversationCreated) and isinstance(created.parent, ForkPoint)
        assert (created.parent.conversation_id, created.parent.version) == (parent, boundary)
        assert (created.tenant, created.subject, created.title) == ("acme", "ann", "trip")
        await turn(client, "ann", fork, "second question")
        # The fork's request repeated the parent's first turn (read through the link).
        r = await client.get(f"/conversations/{fork}/requests", headers=auth("audrey"))
        assert r.status_code == 200, r.text
        (request,) = r.json()["requests"]
        assert request["match"]
        users = [m["content"] for m in request["body"]["messages"] if m["role"] == "user"]
        assert users == ["first question", "second question"]
        # The list and the conversation show the parent.
        by_id = {i["id"]: i for i in await listed(client, "ann")}
        assert by_id[fork]["parent"] == parent and by_id[parent]["parent"] is None
        assert (by_id[fork]["turns"], by_id[fork]["last_status"]) == (1, "finalized")
        detail = (await client.get(f"/conversations/{fork}", headers=auth("ann"))).json()
        assert detail["settings"]["fork_of"]["conversation_id"] == parent
        # The link is verified.
        r = await client.get(f"/conversations/{fork}/verify", headers=auth("ann"))
        assert r.status_code == 200 and r.json()["ok"], r.text
        # Edit the first message: fork before the first turn (version 1), send the edited words.
        r = await client.post(f"/conversations/{parent}/fork", json={"at_version": 1}, headers=auth("ann"))
        assert r.status_code == 201, r.text
        edited = r.json()["id"]
        await turn(client, "ann", edited, "first question, edited")
        rows = (await client.get(f"/conversations/{edited}/messages", headers=auth("ann"))).json()
        assert [m["role"] for m in rows["messages"]] == ["user", "assistant"]
        # The parent is as it was.
        assert len(await store.messages.rows(parent)) == 4


async def test_fork_refusals_over_http(store: Any) -> None:
    async with serving(service(store)) as url, httpx.AsyncClient(base_url=url) as client:
        parent = await create(client, "ann")
        await turn(client, "ann", parent, "hello")
        streams = sorted(await store.log.streams())

        async def fork(who: str, body: Any, conv: str = parent) -> httpx.Response:
            return await client.post(f"/conversations/{conv}/fork", json=body, headers=auth(who))

        r = await fork("ann", {"at_version": 2})  # TurnStarted: inside the turn
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_fork"), r.text
        assert "turn boundary" in r.json()["error"]["message"]
        r = await fork("ann", {"at_version": 999})
        assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_fork"), r.text
        for body in ({}, {"at_version": 0}, {"at_version": "1"}, {"at_version": 1, "extra": 1}):
            r = await fork("ann", body)
            assert (r.status_code, r.json()["error"]["code"]) == (422, "invalid_body"), (body, r.text)
        assert (await fork("carl", {"at_version": 1})).status_code == 404  # another subject's
        assert (await fork("ann@globex", {"at_version": 1})).status_code == 404  # another tenant's
        assert (await fork("audrey", {"at_version": 1})).status_code == 403  # an auditor reads only
        assert (await fork("ann", {"at_version": 1}, "nope")).status_code == 404
        assert (await client.post(f"/conversations/{parent}/fork", json={"at_version": 1})).status_code == 401
        assert sorted(await store.log.streams()) == streams  # nothing written
        await settled()
