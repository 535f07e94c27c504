"""Issue 13, existence by timing: another tenant told an existing conversation id from a missing
one by the response time (a shared cache answered the one from memory, the other read the
database). Timing tests are flaky on a shared machine, so this tests the mechanism: every answer a
caller must not tell apart takes the same path (one store read the first time, then the same 404
from memory until ``not_found_ttl``), and nobody's use of a conversation warms the cache for
anyone else (``_tenancy``)."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from turnlog.adapters.llm import EchoLLM
from turnlog.adapters.server import Principal, ServerConfig, TokenAuth, TurnService

from ..server.conftest import serving

ANN = {"authorization": "Bearer tok-ann"}  # acme, the owner
CAT = {"authorization": "Bearer tok-cat"}  # acme, another subject (not an auditor)
BOB = {"authorization": "Bearer tok-bob"}  # globex, another tenant
PROBES = 15


def service(store: Any, **config: Any) -> TurnService:
    auth = TokenAuth(
        {
            "tok-ann": Principal("acme", subject="ann"),
            "tok-cat": Principal("acme", subject="cat"),
            "tok-bob": Principal("globex", subject="bob"),
        }
    )
    return TurnService(
        store.log, store.messages, EchoLLM(), authenticate=auth, config=ServerConfig(recover_grace=0, **config)
    )


def spy_reads(log: Any) -> list[str]:
    """Every stream ``log.read`` is asked for, from now on."""
    calls: list[str] = []
    real = log.read

    async def read(stream_id: str, *args: Any, **kwargs: Any) -> Any:
        calls.append(stream_id)
        return await real(stream_id, *args, **kwargs)

    log.read = read
    return calls


@pytest.mark.parametrize("ttl", [0.5, 0.0])
async def test_a_foreign_id_and_a_missing_id_take_the_same_path(store: Any, ttl: float) -> None:
    svc = service(store, not_found_ttl=ttl)
    async with serving(svc) as url, httpx.AsyncClient(base_url=url) as client:
        conv = (await client.post("/conversations", json={}, headers=ANN)).json()["id"]
        missing = "conv_" + "0" * 32  # shaped as turnlog mints them
        reads = spy_reads(store.log)
        # The owner's use makes the owner's entry: one read, then none.
        for _ in range(PROBES):
            assert (await client.get(f"/conversations/{conv}/messages", headers=ANN)).status_code == 200
        assert reads.count(conv) == 1

        async def probe(who: dict[str, str], target: str) -> tuple[list[str], list[tuple[int, str]]]:
            """The store reads and the answers of PROBES requests for ``target``."""
            before = len(reads)
            answers = []
            for _ in range(PROBES):
                r = await client.get(f"/conversations/{target}/verify", headers=who)
                answers.append((r.status_code, r.json()["error"]["message"].replace(target, "ID")))
            return reads[before:], answers

        for who in (BOB, CAT):
            for _ in range(2):  # the second round after the remembered 404s have expired
                existing, missed = await probe(who, conv), await probe(who, missing)
                # The same reads for the existing conversation as for the missing one, whoever
                # used it before: one, then the remembered 404 (with ttl 0, one per request).
                times = 1 if ttl else PROBES
                assert existing[0] == [conv] * times and missed[0] == [missing] * times, (existing[0], missed[0])
                assert existing[1] == missed[1] == [(404, "no conversation 'ID'")] * PROBES
                await asyncio.sleep(ttl)
        # The strangers' probes never touched the owner's entry.
        before = len(reads)
        assert (await client.get(f"/conversations/{conv}/messages", headers=ANN)).status_code == 200
        assert reads[before:] == []
        owners = {key[:3]: value for key, (value, _, _) in svc.tenancy.cache._items.items()}
        assert owners[("acme", "ann", 1)] is not None
        assert all(owners[key[:3]] is None for key in owners if key[:3] != ("acme", "ann", 1))


async def test_an_auditor_reads_what_it_may_from_its_own_entry(store: Any) -> None:
    svc = service(store)
    svc.authenticate = TokenAuth(
        {"tok-ann": Principal("acme", subject="ann"), "tok-aud": Principal("acme", level=10, subject="audrey")}
    )
    async with serving(svc) as url, httpx.AsyncClient(base_url=url) as client:
        conv = (await client.post("/conversations", json={}, headers=ANN)).json()["id"]
        reads = spy_reads(store.log)
        aud = {"authorization": "Bearer tok-aud"}
        for _ in range(3):
            assert (await client.get(f"/conversations/{conv}/messages", headers=aud)).status_code == 200
            # 403, not 404: the auditor may read it, so the answer hides nothing.
            r = await client.post(f"/conversations/{conv}/cancel", json={}, headers=aud)
            assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert reads.count(conv) == 1
