"""``turnlog erase``: by id, a subject's conversations, and retention (--older-than), from the
command line; errors are one line and exit 1."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from turnlog.adapters.cli import main
from turnlog.adapters.stores import open_store
from turnlog.engine import ConversationErased, FixedClock, replay, verify

from ._scenario import run_turn


async def _setup(db: Path) -> dict[str, str]:
    store = await open_store(db)
    try:
        # Written on 2026-01-01 (a fixed clock): old by the system clock of any later day.
        ids = {
            "a": (await run_turn(store, tenant="t", subject="sam", clock=FixedClock()))[0],
            "b": (await run_turn(store, tenant="t", subject="sam", clock=FixedClock()))[0],
            "c": (await run_turn(store, tenant="t", subject="kim", clock=FixedClock()))[0],
        }
    finally:
        await store.close()
    return ids


async def _last(db: Path) -> dict[str, ConversationErased | None]:
    store = await open_store(db, create=False)
    try:
        out = {}
        for conv in await store.log.streams():
            events = [r async for r in replay(store.log, conv)]
            last = events[-1].event
            out[conv] = last if isinstance(last, ConversationErased) else None
        assert (await verify(store.log)).ok
        return out
    finally:
        await store.close()


def test_erase_by_id_by_subject_and_by_age(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.db"
    ids = asyncio.run(_setup(db))
    assert main(["erase", ids["a"], "--db", str(db), "--reason", "ticket 7", "--by-subject", "dpo"]) == 0
    assert f"erased {ids['a']}" in capsys.readouterr().out
    erased = asyncio.run(_last(db))
    assert erased[ids["a"]] == ConversationErased(tenant="operator", subject="dpo", reason="ticket 7")
    assert erased[ids["b"]] is None and erased[ids["c"]] is None

    # A second erase of the same conversation: one line, exit 1.
    assert main(["erase", ids["a"], "--db", str(db), "--reason", "again"]) == 1
    assert "was erased" in capsys.readouterr().err

    assert main(["erase", "--subject", "sam", "--tenant", "t", "--db", str(db), "--reason", "sam left"]) == 0
    out = capsys.readouterr().out
    assert f"erased {ids['b']}" in out and f"left {ids['a']}: conversation_erased" in out
    assert asyncio.run(_last(db))[ids["c"]] is None

    # Retention: the last one is ~a year old by now; nothing is 100 years old.
    assert main(["erase", "--older-than", "36500", "--db", str(db), "--reason", "retention"]) == 0
    assert "0 erased" in capsys.readouterr().out
    assert main(["erase", "--older-than", "1", "--db", str(db), "--reason", "retention"]) == 0
    assert f"erased {ids['c']}" in capsys.readouterr().out
    assert all(e is not None for e in asyncio.run(_last(db)).values())


def test_erase_needs_exactly_one_selection_and_a_reason(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "cli.db"
    asyncio.run(_setup(db))
    assert main(["erase", "--db", str(db), "--reason", "x"]) == 1
    assert "exactly one" in capsys.readouterr().err
    assert main(["erase", "x", "--subject", "s", "--db", str(db), "--reason", "x"]) == 1
    assert main(["erase", "missing-conv", "--db", str(db), "--reason", "x"]) == 1
    assert "unknown conversation 'missing-conv'" in capsys.readouterr().err
