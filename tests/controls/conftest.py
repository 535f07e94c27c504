"""What the controls tests share: reading an SSE response in steps (one iterator for the whole
response: httpx streams a body once)."""

from __future__ import annotations

import httpx

from ..server.conftest import frames_of


class SseReader:
    """An open SSE response, read up to a number of frames, then on to its end."""

    def __init__(self, response: httpx.Response) -> None:
        self.body = b""
        self._chunks = response.aiter_raw()

    @property
    def frames(self) -> list[bytes]:
        return frames_of(self.body)

    async def until(self, frames: int) -> list[bytes]:
        """Read until at least ``frames`` whole frames have arrived."""
        async for chunk in self._chunks:
            self.body += chunk
            if len(self.frames) >= frames:
                break
        return self.frames

    async def rest(self) -> list[bytes]:
        """Read to the end of the response."""
        async for chunk in self._chunks:
            self.body += chunk
        return self.frames
