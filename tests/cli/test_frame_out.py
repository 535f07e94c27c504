"""``FrameOut`` (``turnlog play``, ``approve``, ``deny``): a burst of frames goes out in one write,
and nothing made before the turn waits stays behind it: a reader of stdout sees a committed
batch's frames while the next batch is still being written."""

from __future__ import annotations

import asyncio
import io
import sys

import pytest
from turnlog.adapters.cli._common import FrameOut


class _Stdout:
    """What ``sys.stdout`` offers FrameOut: ``buffer`` and ``flush``; every write is kept apart."""

    def __init__(self) -> None:
        self.writes: list[bytes] = []
        self.buffer = self
        self.flushes = 0

    def write(self, data: bytes) -> int:
        self.writes.append(bytes(data))
        return len(data)

    def flush(self) -> None:
        self.flushes += 1


def _fake_stdout(monkeypatch: pytest.MonkeyPatch) -> _Stdout:
    # Set in the test's body: pytest's own capture puts its stdout back after fixtures ran.
    fake = _Stdout()
    monkeypatch.setattr(sys, "stdout", fake)
    return fake


async def test_a_burst_is_one_write_made_as_soon_as_the_producer_waits(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = _fake_stdout(monkeypatch)
    out = FrameOut()
    for i in range(100):  # one committed batch: no await between its frames
        out(b"id: %d\n\n" % i)
    assert stdout.writes == []  # not one write per frame
    await asyncio.sleep(0)  # the turn waits (for its next commit): the burst goes out now
    assert stdout.writes == [b"".join(b"id: %d\n\n" % i for i in range(100))]
    assert stdout.flushes == 1
    out(b"id: 100\n\n")
    await asyncio.sleep(0)
    assert stdout.writes[-1] == b"id: 100\n\n"
    out.close()
    assert len(stdout.writes) == 2  # nothing was left to write


async def test_a_long_burst_is_written_every_limit_bytes(monkeypatch: pytest.MonkeyPatch) -> None:
    stdout = _fake_stdout(monkeypatch)
    out = FrameOut(limit=1000)
    frame = b"x" * 99 + b"\n"
    for _ in range(25):  # 2,500 bytes without a wait: bounded memory, written as it goes
        out(frame)
    assert [len(w) for w in stdout.writes] == [1000, 1000]
    out.close()
    assert b"".join(stdout.writes) == frame * 25


def test_frames_written_by_a_real_stdout_arrive_whole() -> None:
    # The buffer FrameOut writes to is the binary stdout: bytes go through unencoded.
    raw = io.BytesIO()
    wrapper = io.TextIOWrapper(raw, encoding="utf-8")

    async def run() -> None:
        out = FrameOut()
        out('data: {"content":"héllo"}\n\n'.encode())
        out.close()

    saved = sys.stdout
    sys.stdout = wrapper
    try:
        asyncio.run(run())
    finally:
        sys.stdout = saved
    assert raw.getvalue() == 'data: {"content":"héllo"}\n\n'.encode()
