"""The row store's own promises (``turnlog.projections.MessageStore``): upsert by id, rows in
``seq`` order per conversation, pages of them (``rows_page``), ``applied_version``, ``clear`` and
``live_conversations``."""

from __future__ import annotations

import pytest

from ._support import Opened, RowsHarness, row


class RowsContract(RowsHarness):
    async def test_save_upserts_rows_by_id(self, store: Opened) -> None:
        m = store.messages
        user, live = row("u1", "c1", 2, text="Grüße 👋"), row("a1", "c1", 3, "assistant", text="", status="live")
        await m.save("c1", [user, live], 3)
        assert await m.rows("c1") == [user, live]
        done = row("a1", "c1", 3, "assistant", text="Hallo!", token_count=2, usage='{"total_tokens": 9}')
        await m.save("c1", [done], 5)
        # The same id again replaces the row: one row per message, never a duplicate.
        assert await m.rows("c1") == [user, done]

    async def test_rows_come_in_seq_order_and_per_conversation(self, store: Opened) -> None:
        m = store.messages
        late, early, middle = row("x", "c1", 10), row("y", "c1", 2, "assistant"), row("z", "c1", 5)
        other = row("w", "c2", 1)
        await m.save("c1", [late, early], 10)
        await m.save("c2", [other], 1)
        await m.save("c1", [middle], 11)
        assert await m.rows("c1") == [early, middle, late]
        assert await m.rows("c2") == [other]
        assert await m.rows("nobody") == []

    async def test_rows_page_reads_a_page_after_a_seq_in_seq_order(self, store: Opened) -> None:
        m = store.messages
        rows = [row(f"r{seq}", "c1", seq, "user" if seq % 2 else "assistant") for seq in (9, 2, 7, 3, 12, 5, 4)]
        await m.save("c1", rows, 12)
        await m.save("c2", [row("other", "c2", 6)], 6)
        in_order = sorted(rows, key=lambda r: r.seq)
        pages, after = [], 0
        while page := await m.rows_page("c1", after, 3):
            assert len(page) <= 3
            pages.append(page)
            after = page[-1].seq
        # Every row once, in seq order, in pages of at most 3; nothing of another conversation.
        assert [r for p in pages for r in p] == in_order and [len(p) for p in pages] == [3, 3, 1]
        assert await m.rows_page("c1", 4, 2) == in_order[3:5]  # strictly after seq 4
        assert await m.rows_page("c1", 12, 5) == [] and await m.rows_page("nobody", 0, 5) == []
        assert await m.rows_page("c1", 0, 100) == in_order

    async def test_every_field_round_trips(self, store: Opened) -> None:
        m = store.messages
        rows = [
            row("u-ü", "conv-ストリーム", 2, text="日本語 👩‍👩‍👧‍👦 \n\t \"quoted\" \\ 'single'"),
            row("a-ü", "conv-ストリーム", 9, "assistant", text="x" * 1_000_000 + "é", token_count=0, usage="{}"),
            row("f", "conv-ストリーム", 12, "assistant", text="", status="failed", token_count=7, usage='{"a": 1}'),
        ]
        await m.save("conv-ストリーム", rows, 12)
        assert await m.rows("conv-ストリーム") == rows

    async def test_applied_version_is_what_the_last_save_recorded(self, store: Opened) -> None:
        m = store.messages
        assert await m.applied_version("c1") == 0  # never saved
        await m.save("c1", [row("u1", "c1", 2)], 3)
        assert await m.applied_version("c1") == 3
        # A batch that changed no row still moves the conversation on (its events are applied).
        await m.save("c1", [], 7)
        assert await m.applied_version("c1") == 7
        assert await m.applied_version("c2") == 0  # per conversation
        assert [r.id for r in await m.rows("c1")] == ["u1"]

    async def test_clear_drops_every_row_and_version(self, store: Opened) -> None:
        m = store.messages
        await m.save("c1", [row("u1", "c1", 2, status="live")], 2)
        await m.save("c2", [row("u2", "c2", 2)], 4)
        await m.clear()
        for conv in ("c1", "c2"):
            assert await m.rows(conv) == [] and await m.applied_version(conv) == 0
        # Still usable afterwards (rebuild clears, then saves every conversation again).
        await m.save("c1", [row("u1", "c1", 2)], 2)
        assert [r.id for r in await m.rows("c1")] == ["u1"] and await m.applied_version("c1") == 2

    async def test_live_conversations_are_those_with_a_live_row(self, store: Opened) -> None:
        m = store.messages
        try:
            assert await m.live_conversations() == []
        except NotImplementedError:
            pytest.skip("the store does not list live conversations (allowed: the sweep reads the log)")
        await m.save("c1", [row("u1", "c1", 2, status="live")], 2)
        await m.save("c2", [row("u2", "c2", 2), row("a2", "c2", 5, "assistant", status="failed")], 5)
        await m.save("c3", [row("u3", "c3", 2, status="live")], 2)
        await m.save("c4", [row("u4", "c4", 2, status="live"), row("a4", "c4", 3, "assistant", status="live")], 3)
        assert sorted(await m.live_conversations()) == ["c1", "c3", "c4"]  # each once
        # The turn of c3 ends: its rows are upserted with their final status.
        await m.save("c3", [row("u3", "c3", 2), row("a3", "c3", 6, "assistant")], 6)
        assert sorted(await m.live_conversations()) == ["c1", "c4"]
