"""The contract suites as a user runs them: a test file of their own, outside this repository's
conftest and its ``asyncio_mode = auto`` (pytest-asyncio in strict mode). They pass on a store
that keeps every promise, and each fails exactly the tests of the promise a store breaks."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from turnlog.engine.testing import EventLogContract
from turnlog.projections.testing import MessageStoreContract

USER_TESTS = '''
from turnlog.engine import InMemoryEventLog
from turnlog.engine.testing import EventLogContract
from turnlog.projections import MemoryMessageStore, history_of
from turnlog.projections.testing import MessageStoreContract


class TestLog(EventLogContract):
    async def open_log(self):
        return InMemoryEventLog()


class TestRows(MessageStoreContract):
    async def open_rows(self):
        return InMemoryEventLog(), MemoryMessageStore()


class LastWriteWins(InMemoryEventLog):
    """Ignores a stale expected_version: appends at the head, whatever the caller last read."""

    async def append(self, stream_id, events, expected_version, *, recorded_at):
        last = await self.last(stream_id)
        return await super().append(stream_id, events, last.version if last else 0, recorded_at=recorded_at)


class TestLastWriteWins(EventLogContract):
    async def open_log(self):
        return LastWriteWins()


class InsertionOrder(MemoryMessageStore):
    """Gives rows in the order they were first saved, not in seq order."""

    async def rows(self, conversation_id):
        return list(self._rows.get(conversation_id, {}).values())


class TestInsertionOrder(MessageStoreContract):
    async def open_rows(self):
        return InMemoryEventLog(), InsertionOrder()


class NoCatchUp(MemoryMessageStore):
    """Answers history from its rows even when they are behind the log."""

    async def history(self, log, conversation_id, head):
        return history_of(await self.rows(conversation_id))


class TestNoCatchUp(MessageStoreContract):
    async def open_rows(self):
        return InMemoryEventLog(), NoCatchUp()
'''


def contract_tests(contract: type) -> set[str]:
    return {name for name in dir(contract) if name.startswith("test_")}


def test_the_contracts_pass_a_sound_store_and_fail_each_broken_promise(tmp_path: Path) -> None:
    (tmp_path / "test_my_store.py").write_text(USER_TESTS)
    report = tmp_path / "report.xml"
    strict = ["-o", "asyncio_mode=strict", "-o", "asyncio_default_fixture_loop_scope=function"]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *strict, f"--junitxml={report}", "test_my_store.py"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=300,
    )
    outcomes: dict[str, dict[str, set[str]]] = {}
    for case in ET.parse(report).iter("testcase"):
        cls = case.get("classname", "").rpartition(".")[2]
        kind = next((child.tag for child in case if child.tag in ("failure", "error", "skipped")), "passed")
        outcomes.setdefault(cls, {}).setdefault(kind, set()).add(case.get("name", ""))
    log_tests, row_tests = contract_tests(EventLogContract), contract_tests(MessageStoreContract)
    assert len(log_tests) == 17 and len(row_tests) == 12
    assert outcomes["TestLog"] == {"passed": log_tests}, proc.stdout[-3000:]
    assert outcomes["TestRows"] == {"passed": row_tests}, proc.stdout[-3000:]
    broken = {
        "TestLastWriteWins": {
            "test_stale_expected_version_raises_and_writes_nothing",
            "test_two_instances_racing_on_one_version_exactly_one_wins",
        },
        "TestInsertionOrder": {"test_rows_come_in_seq_order_and_per_conversation"},
        "TestNoCatchUp": {
            "test_history_catches_up_rows_that_fell_behind_the_log",
            "test_history_equals_the_history_folded_from_the_log",
        },
    }
    for cls, failing in broken.items():
        everything = log_tests if cls == "TestLastWriteWins" else row_tests
        assert outcomes[cls] == {"failure": failing, "passed": everything - failing}, cls
    assert proc.returncode == 1
