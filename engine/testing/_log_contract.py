"""The event log's contract (``turnlog.engine.EventLog``): writing, reading, concurrency, the hash
chain and payloads. Each test is a method, so a store's test class runs all of them."""

from __future__ import annotations

import asyncio
import hashlib

import msgspec
import pytest
from turnlog.engine import (
    GENESIS_HASH,
    ConcurrencyError,
    ConversationCreated,
    EventLog,
    NewEvent,
    TextDelta,
    ToolCall,
    ToolCallsRequested,
)

from ._support import RECORDED_AT, Instances, LogHarness, append, deltas


class ReadWriteContract(LogHarness):
    # -- append and the readers -------------------------------------------------------------------

    async def test_append_then_read_read_all_last_streams(self, log: EventLog) -> None:
        assert await log.last("a") is None
        assert await log.read("a") == [] and await log.read_all() == [] and await log.streams() == []

        a1 = await append(log, "a", [NewEvent(ConversationCreated(model="m"))], 0)
        b = await append(log, "b", deltas(2), 0)
        a2 = await append(log, "a", deltas(3), 1)

        assert [(r.stream_id, r.version) for r in a1 + b + a2] == [
            ("a", 1),
            ("b", 1),
            ("b", 2),
            ("a", 2),
            ("a", 3),
            ("a", 4),
        ]
        assert [r.position for r in a1 + b + a2] == [1, 2, 3, 4, 5, 6]
        assert await log.read("a") == a1 + a2
        assert await log.read("a", after_version=2) == a2[1:]
        assert await log.read("b") == b
        assert await log.read_all() == a1 + b + a2
        assert await log.read_all(after_position=4) == a2[1:]
        assert await log.last("a") == a2[-1] and await log.last("b") == b[-1]
        assert await log.streams() == ["a", "b"]
        assert [r.event for r in a2] == [e.event for e in deltas(3)]
        assert all(r.recorded_at == RECORDED_AT and r.turn_id == "turn-1" for r in b + a2)

    async def test_an_empty_batch_writes_nothing(self, log: EventLog) -> None:
        assert await append(log, "a", [], 0) == []
        assert await log.read_all() == [] and await log.streams() == []

    async def test_read_pages(self, log: EventLog) -> None:
        await append(log, "a", deltas(25), 0)
        await append(log, "b", deltas(10), 0)
        got, after = [], 0
        while page := await log.read("a", after, limit=7):
            assert len(page) <= 7
            got += page
            after = page[-1].version
        assert [r.version for r in got] == list(range(1, 26))
        everything, after = [], 0
        while page := await log.read_all(after, limit=4):
            everything += page
            after = page[-1].position
        assert [r.position for r in everything] == list(range(1, 36))
        assert [r.version async for r in log.iter_stream("a", 20)] == [21, 22, 23, 24, 25]

    # -- optimistic concurrency and atomicity -----------------------------------------------------

    async def test_stale_expected_version_raises_and_writes_nothing(self, log: EventLog) -> None:
        await append(log, "a", deltas(2), 0)
        for stale in (0, 1, 3):
            with pytest.raises(ConcurrencyError) as info:
                await append(log, "a", deltas(5, text="lost"), stale)
            assert info.value.stream_id == "a" and info.value.expected_version == stale
            assert info.value.actual_version == 2
            assert "expected version" in str(info.value) and "nothing was written" in str(info.value)
        assert [r.version for r in await log.read("a")] == [1, 2]
        assert len(await log.read_all()) == 2
        await append(log, "a", deltas(1), 2)  # the right version still works

    async def test_two_instances_racing_on_one_version_exactly_one_wins(self, logs: Instances) -> None:
        one, two = await logs.two()
        await append(one, "s", deltas(1), 0)
        for _ in range(5):
            expected = (await two.last("s")).version  # type: ignore[union-attr]
            results = await asyncio.gather(
                append(one, "s", deltas(3, text="one"), expected),
                append(two, "s", deltas(3, text="two"), expected),
                return_exceptions=True,
            )
            assert sum(isinstance(r, ConcurrencyError) for r in results) == 1, results
            winner = next(r for r in results if isinstance(r, list))
            # The loser wrote nothing: after the old head the stream holds exactly the winner's batch.
            assert await two.read("s", expected) == winner
        versions = [r.version for r in await one.read("s")]
        assert versions == list(range(1, 17))

    async def test_a_batch_that_fails_midway_writes_nothing(self, log: EventLog) -> None:
        await append(log, "a", deltas(2), 0)

        class Unencodable:
            pass

        bad = [*deltas(3), NewEvent(ToolCallsRequested(iteration=1, calls=[ToolCall("c", "n", Unencodable())]))]  # type: ignore[arg-type]
        with pytest.raises((TypeError, msgspec.EncodeError)):
            await append(log, "a", bad, 2)
        assert [r.version for r in await log.read("a")] == [1, 2]
        assert len(await log.read_all()) == 2
        again = await append(log, "a", deltas(1), 2)
        assert again[0].version == 3 and again[0].prev_hash == (await log.read("a"))[1].hash

    async def test_versions_gapless_and_positions_in_commit_order_under_concurrency(self, logs: Instances) -> None:
        one, two = await logs.two()

        async def writer(log: EventLog, stream: str, batches: int) -> None:
            version = 0
            for i in range(batches):
                done = await append(log, stream, deltas(1 + i % 3, start=version), version)
                version = done[-1].version

        await asyncio.gather(*(writer(one if i % 2 else two, f"s{i}", 8) for i in range(6)))
        everything = await one.read_all(limit=10_000)
        assert [r.position for r in everything] == list(range(1, len(everything) + 1))
        for i in range(6):
            versions = [r.version for r in await two.read(f"s{i}")]
            assert versions == list(range(1, len(versions) + 1)) and len(versions) == 15


def expected_chain(events: list[NewEvent], stream: str) -> list[tuple[str, str]]:
    """The chain computed from first principles (not through `seal`): every store must match it."""
    out, prev = [], GENESIS_HASH
    for version, new in enumerate(events, 1):
        payload = msgspec.json.encode(new.event)
        ev_type = type(new.event).__struct_config__.tag
        header = msgspec.json.encode([prev, stream, version, new.turn_id, RECORDED_AT, ev_type, new.event.SCHEMA])
        prev = hashlib.sha256(header + b"\n" + payload).hexdigest()
        out.append((prev, payload.decode()))
    return out


class StorageContract(LogHarness):
    # -- the hash chain ---------------------------------------------------------------------------

    async def test_hash_chain_bytes_are_identical_on_every_store(self, log: EventLog) -> None:
        events = [
            NewEvent(ConversationCreated(system_prompt="Sé breve ✨", model="m", tenant="t1")),
            *deltas(3, text="Grüße 👋 "),
            NewEvent(ToolCallsRequested(iteration=1, calls=[ToolCall("c1", "get_weather", '{"city":"Zürich"}')])),
        ]
        await append(log, "conv-ü", events[:2], 0)
        await append(log, "conv-ü", events[2:], 2)
        stored = await log.read("conv-ü")
        assert [(r.hash, r.payload.decode()) for r in stored] == expected_chain(events, "conv-ü")
        assert [r.prev_hash for r in stored] == [GENESIS_HASH] + [r.hash for r in stored[:-1]]
        # Pinned: a change to the encoding or the header would silently fork old logs. (Re-pinned
        # when ConversationCreated gained ``subject``: a new field is written into new payloads;
        # stored payloads keep their bytes, so old logs still verify.)
        assert stored[-1].hash == "a7b26e84176e9e6ec595d641b1042d140dec39065683ae828fa79d0e4efb755e"

    # -- payloads ---------------------------------------------------------------------------------

    async def test_unicode_and_control_characters_round_trip(self, log: EventLog) -> None:
        texts = [
            "日本語のテキスト",
            "emoji 👩‍👩‍👧‍👦 and 🇫🇷",
            "nul \x00 byte, tab \t, newline \n",
            "rtl עברית",
            "\ud7ff\ue000",
        ]
        stream = "ストリーム-👋"
        await append(log, stream, [NewEvent(TextDelta(iteration=1, text=t), "turn-ü") for t in texts], 0)
        got = await log.read(stream)
        assert [r.event.text for r in got] == texts  # type: ignore[attr-defined]
        assert all(r.turn_id == "turn-ü" for r in got)
        assert await log.streams() == [stream]

    async def test_large_payloads(self, log: EventLog) -> None:
        big = "x" * 4_000_000 + "é"
        batch = [NewEvent(TextDelta(iteration=1, text=big)), *deltas(500)]
        await append(log, "a", batch, 0)
        got = await log.read("a")
        assert got[0].event.text == big and len(got) == 501  # type: ignore[attr-defined]
        assert got[0].payload == msgspec.json.encode(batch[0].event)

    # -- close ------------------------------------------------------------------------------------

    async def test_close_is_idempotent_and_the_data_outlives_the_handle(self, logs: Instances) -> None:
        log = await logs.first()
        written = await append(log, "a", deltas(3), 0)
        async with log:
            pass
        await log.close()
        reopened = await logs.again()
        if reopened is not None:  # a store that cannot be opened twice keeps nothing after close
            assert await reopened.read("a") == written
            assert await reopened.last("a") == written[-1]
