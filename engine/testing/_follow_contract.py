"""``subscribe``/``follow``: catch up from the log, then follow it; no gap and no duplicate at the
hand-over, also when appends race with it, and across two instances."""

from __future__ import annotations

import asyncio
import contextlib

from turnlog.engine import EventLog, Recorded

from ._support import RECORDED_AT, Instances, LogHarness, deltas, take


class FollowContract(LogHarness):
    async def test_catch_up_then_live(self, log: EventLog) -> None:
        await log.append("a", deltas(5), 0, recorded_at=RECORDED_AT)
        await log.append("other", deltas(3), 0, recorded_at=RECORDED_AT)
        reader = asyncio.create_task(take(log.subscribe("a", after_version=2), 9))
        await asyncio.sleep(0.05)  # the reader has caught up and waits
        for version in (5, 7, 9):
            await log.append("a", deltas(2, start=version), version, recorded_at=RECORDED_AT)
            await log.append("other", deltas(1), version // 2 + 1, recorded_at=RECORDED_AT)
        got = await reader
        assert [r.version for r in got] == list(range(3, 12))
        assert {r.stream_id for r in got} == {"a"}
        assert got == (await log.read("a"))[2:]

    async def test_no_gap_no_duplicate_when_appends_race_the_hand_over(self, log: EventLog) -> None:
        total = 120

        async def appender() -> None:
            for version in range(total):
                await log.append("a", deltas(1, start=version), version, recorded_at=RECORDED_AT)
                await asyncio.sleep(0)

        async def late_reader(after: int) -> list[int]:
            # Start while the appender is running, at whatever the head is now.
            while (last := await log.last("a")) is None or last.version < after:  # noqa: ASYNC110 (polls the log)
                await asyncio.sleep(0)
            return [r.version for r in await take(log.subscribe("a", after), total - after, timeout=15)]

        starts = [0, 10, 30, 60, 90, 119]
        writing = asyncio.create_task(appender())
        results = await asyncio.gather(*(late_reader(s) for s in starts))
        await writing
        for start, versions in zip(starts, results, strict=True):
            assert versions == list(range(start + 1, total + 1)), start

    async def test_subscribe_sees_appends_from_another_instance(self, logs: Instances) -> None:
        reader_log, writer_log = await logs.two()
        if reader_log is writer_log or self.wakes_other_instances:
            # Only a wake-up (in-process, or LISTEN/NOTIFY) can deliver within the timeout below.
            reader_log.poll_interval = 60
        else:
            # Another instance cannot wake this one: it polls; keep the test fast.
            reader_log.poll_interval = 0.05
        sub = reader_log.subscribe("a", 0)
        reader = asyncio.create_task(take(sub, 6, timeout=10))
        await asyncio.sleep(0.1)
        for version in range(0, 6, 2):
            await writer_log.append("a", deltas(2, start=version), version, recorded_at=RECORDED_AT)
            await asyncio.sleep(0.02)
        got = await reader
        assert [r.version for r in got] == [1, 2, 3, 4, 5, 6]
        assert got == await writer_log.read("a")

    async def test_a_subscriber_that_is_stopped_releases_everything(self, log: EventLog) -> None:
        await log.append("a", deltas(2), 0, recorded_at=RECORDED_AT)
        sub = log.subscribe("a", 0)
        task = asyncio.create_task(take(sub, 10))
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        # The log is still usable and a new subscriber starts cleanly.
        await log.append("a", deltas(1), 2, recorded_at=RECORDED_AT)
        assert [r.version for r in await take(log.subscribe("a", 1), 2)] == [2, 3]
        # Nothing of the followers stays in memory (a server follows every conversation with a
        # turn): EventLog's bookkeeping, which every store inherits.
        assert not log._waiters and not log._followers and not log._heads

    async def test_a_follower_in_the_writing_process_gets_batches_without_reading_them_back(
        self, log: EventLog
    ) -> None:
        reads = 0
        real_read = log.read

        async def counting_read(*args: object, **kw: object) -> list[Recorded]:
            nonlocal reads
            reads += 1
            return await real_read(*args, **kw)  # type: ignore[arg-type]

        log.read = counting_read  # type: ignore[method-assign]
        got: list[list[Recorded]] = []

        async def consume() -> None:
            async for batch in log.follow("a"):
                got.append(batch)
                if sum(map(len, got)) == 60:
                    return

        consumer = asyncio.create_task(consume())
        for version in range(0, 60, 3):
            await asyncio.sleep(0.01)  # the follower is waiting when the batch commits, as a live reader is
            await log.append("a", deltas(3, start=version), version, recorded_at=RECORDED_AT)
        await asyncio.wait_for(consumer, 5)
        assert [len(batch) for batch in got] == [3] * 20  # one page per committed batch
        assert [r for batch in got for r in batch] == await real_read("a")
        assert reads <= 2  # the catch-up, not one read per batch

    async def test_batches_committed_back_to_back_are_not_left_to_the_poll(self, log: EventLog) -> None:
        log.poll_interval = 60.0  # only a wake-up can bring them in time
        follower = log.subscribe("a")
        reader = asyncio.create_task(take(follower, 12, timeout=5))
        await asyncio.sleep(0.05)
        # Four commits with no await in between that lets the reader run: it is woken once, with
        # the first batch, and must find the other three on its own.
        for v in (0, 3, 6, 9):
            await log.append("a", deltas(3, start=v), v, recorded_at=RECORDED_AT)
        got = await reader
        assert [r.version for r in got] == list(range(1, 13))
