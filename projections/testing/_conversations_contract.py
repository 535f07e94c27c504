"""The conversation index's promises (``turnlog.projections.ConversationIndex``, kept by a
``MessageStore`` as its ``conversations``): upsert by id that never goes back to an older
version, pages newest first within a tenant and its subjects, keyset paging that visits each
summary once, ``clear``; and as part of the row port: the sink keeps every summary equal to the
one folded from the log, creation included, and catch-up, ``history`` and ``rebuild`` bring one
that fell behind up to the log."""

from __future__ import annotations

from collections.abc import Sequence

from turnlog.engine import ConversationCreated, TurnEngine
from turnlog.projections import ConversationIndex, ConversationSummary, MessageStore, fold_summary, rebuild

from ._port_contract import PLAIN, TOOL_THEN_ANSWER, TURNS
from ._support import Opened, RowsHarness, ScriptLLM, head, run_turns


def summary(
    id: str,
    updated_at: str,
    *,
    tenant: str = "t",
    subject: str = "s",
    title: str = "",
    version: int = 1,
    **fields: object,
) -> ConversationSummary:
    created_at = "2026-01-01T00:00:00.000000Z"
    return ConversationSummary(
        id, tenant, subject, title or f"title of {id}", created_at, updated_at, version=version, **fields
    )  # type: ignore[arg-type]


def at(n: int) -> str:
    return f"2026-01-01T00:00:{n:02d}.000000Z"


def index_of(messages: MessageStore) -> ConversationIndex:
    index = messages.conversations
    assert index is not None, "the store keeps no conversation summaries (MessageStore.conversations is None)"
    return index


async def from_log(store: Opened, conversation: str) -> ConversationSummary | None:
    return fold_summary(conversation, [rec async for rec in store.log.iter_stream(conversation)])


class ConversationIndexContract(RowsHarness):
    """Every promise of ``turnlog.projections.ConversationIndex``, through the row store that
    keeps it (``open_rows``' messages, whose ``conversations`` is the index under test)."""

    async def test_save_upserts_by_id_and_every_field_round_trips(self, store: Opened) -> None:
        index = index_of(store.messages)
        assert await index.get("c1") is None and await index.empty()
        first = summary("c1", at(1), subject="ü 👋", title='Grüße\n"x"')
        await index.save(first)
        assert await index.get("c1") == first and not await index.empty()
        later = summary(
            "c1", at(5), version=9, turns=2, last_status="failed", prompt_tokens=2**40, completion_tokens=3,
            total_tokens=2**40 + 3,
        )  # fmt: skip
        await index.save(later)
        assert await index.get("c1") == later

    async def test_a_save_never_takes_a_conversation_back(self, store: Opened) -> None:
        index = index_of(store.messages)
        newer = summary("c1", at(5), version=7, turns=1, last_status="finalized")
        await index.save(newer)
        await index.save(summary("c1", at(3), version=4, turns=1, last_status="live"))  # a late writer
        assert await index.get("c1") == newer
        same = summary("c1", at(5), version=7, turns=1, last_status="finalized", total_tokens=5)
        await index.save(same)  # the same version again (a catch-up racing a turn's end): written
        assert await index.get("c1") == same

    async def test_pages_are_newest_first_within_the_tenant_and_its_subjects(self, store: Opened) -> None:
        index = index_of(store.messages)
        mine = [summary(f"m{i}", at(i), subject="me") for i in (3, 1, 4)]
        shared = [summary("sh", at(2), subject="")]
        others = [summary("x", at(9), subject="you"), summary("y", at(8), tenant="other", subject="me")]
        for s in [*mine, *shared, *others]:
            await index.save(s)

        async def ids(subjects: Sequence[str] | None, tenant: str = "t") -> list[str]:
            return [s.id for s in await index.page(tenant, subjects, limit=10)]

        assert await ids(["me"]) == ["m4", "m3", "m1"]
        assert await ids(["me", ""]) == ["m4", "m3", "sh", "m1"]
        assert await ids(["", "me", "me"]) == ["m4", "m3", "sh", "m1"]  # a subject named twice: once
        assert await ids(None) == ["x", "m4", "m3", "sh", "m1"]  # the whole tenant
        assert await ids(["me"], "other") == ["y"] and await ids(None, "nobody") == []
        assert await ids([]) == []
        assert [s.id for s in await index.page("t", None, limit=2)] == ["x", "m4"]

    async def test_paging_by_before_visits_each_summary_once_in_order(self, store: Opened) -> None:
        index = index_of(store.messages)
        # Ties on updated_at are broken by id (descending): the key (updated_at, id) is unique.
        saved = [summary(f"c{i:02d}", at(i // 3), subject=("", "me", "you")[i % 3]) for i in range(23)]
        for s in saved:
            await index.save(s)
        for subjects in (["me", ""], None):
            expected = [
                s.id
                for s in sorted(saved, key=lambda s: (s.updated_at, s.id), reverse=True)
                if subjects is None or s.subject in subjects
            ]
            seen, before = [], None
            while page := await index.page("t", subjects, limit=4, before=before):
                assert len(page) <= 4
                seen += [s.id for s in page]
                before = (page[-1].updated_at, page[-1].id)
                # Created while paging: newer than everything, so never behind the position.
                new = summary(f"new{len(saved)}", at(59), subject="me")
                await index.save(new)
                saved.append(new)
            assert seen == expected, subjects

    async def test_clear_drops_every_summary(self, store: Opened) -> None:
        index = index_of(store.messages)
        await index.save(summary("c1", at(1)))
        await index.save(summary("c2", at(2), tenant="u"))
        await index.clear()
        assert await index.get("c1") is None and await index.page("t", None, limit=5) == []
        assert await index.empty()
        await index.save(summary("c1", at(1)))
        assert await index.get("c1") == summary("c1", at(1))

    # -- kept by the row port ---------------------------------------------------------------------

    async def test_the_sink_indexes_a_conversation_at_its_creation(self, store: Opened) -> None:
        log, m = store
        conv = await TurnEngine(log, ScriptLLM([])).create_conversation(title="Trip", tenant="t", subject="s")
        (created,) = await log.read(conv)
        assert type(created.event) is ConversationCreated
        await m.sink(conv, 0).committed([created])
        expected = ConversationSummary(conv, "t", "s", "Trip", created.recorded_at, created.recorded_at, version=1)
        assert await index_of(m).get(conv) == expected == await from_log(store, conv)

    async def test_live_summary_equals_the_summary_folded_from_the_log(self, store: Opened) -> None:
        log, m = store
        index = index_of(m)
        conv = await run_turns(log, m, None, [])  # created without the index: the first turn catches up
        for (user, answers), _, _ in TURNS:
            await run_turns(log, m, conv, [(user, answers)], max_iterations=2)
            assert await index.get(conv) == await from_log(store, conv), user
        live = await index.get(conv)
        assert live is not None and live.turns == len(TURNS) and live.version == await head(log, conv)
        assert (live.last_status, live.parent) == ("finalized", None)
        assert live.total_tokens == live.prompt_tokens + live.completion_tokens
        # Rebuilt from the log: the same summary.
        await rebuild(log, m)
        assert await index.get(conv) == live

    async def test_catch_up_and_history_bring_a_summary_behind_the_log_up_to_it(self, store: Opened) -> None:
        log, m = store
        index = index_of(m)
        conv = await run_turns(log, m, None, [PLAIN])
        # The second turn commits, and its process dies before the rows and summary are written.
        await run_turns(log, None, conv, [TOOL_THEN_ANSWER])
        stale = await index.get(conv)
        assert stale is not None and stale.turns == 1 and stale.version < await head(log, conv)
        await m.history(log, conv, await head(log, conv))  # the rows are behind: both caught up
        assert await index.get(conv) == await from_log(store, conv)
        # A third turn folds on from the summary that history brought up to date.
        await run_turns(log, m, conv, [PLAIN])
        caught = await index.get(conv)
        assert caught == await from_log(store, conv) and caught is not None and caught.turns == 3
        await index.clear()
        await m.catch_up(log, conv)
        assert await index.get(conv) == caught

    async def test_a_summary_behind_the_log_is_never_folded_on(self, store: Opened) -> None:
        log, m = store
        index = index_of(m)
        conv = await run_turns(log, m, None, [PLAIN])
        behind = await index.get(conv)
        await run_turns(log, None, conv, [PLAIN])  # no rows, no summary
        # A sink handed the next turn's batches without history() first: it must not add one turn
        # to a summary that misses the one before.
        await run_turns(log, None, conv, [PLAIN])
        events = await log.read(conv)
        last_turn = [r for r in events if r.turn_id == events[-1].turn_id]
        await m.sink(conv, last_turn[0].version - 1).committed(last_turn)
        assert await index.get(conv) == behind
        # The next turn starts from the summary history folds from the log, and saves it.
        await run_turns(log, m, conv, [PLAIN])
        now = await index.get(conv)
        assert now == await from_log(store, conv) and now is not None and now.turns == 4

    async def test_rebuild_recomputes_every_summary(self, store: Opened) -> None:
        log, m = store
        index = index_of(m)
        convs = [await run_turns(log, m, None, [PLAIN] * n) for n in (1, 2)]
        live = [await index.get(c) for c in convs]
        await index.save(summary("ghost", at(1)))  # not in the log: rebuild drops it
        await rebuild(log, m)
        assert [await index.get(c) for c in convs] == live and await index.get("ghost") is None
