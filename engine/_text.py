"""``TextParts``: a text that grows a delta at a time, for every fold that collects streamed text
(the request builder's, the message rows', the transcript's)."""

from __future__ import annotations

from ._events import ERASED_TEXT

#: A text's parts are joined into one chunk once they are this many: memory holds the text (in
#: chunks of a few thousand deltas, each joined once) and at most this many parts, not an object
#: per delta (a 1M-delta answer is ~4 MB of text, not ~60 MB of parts).
CHUNK = 4096


class TextParts:
    """A text that grows a delta at a time, O(1) per delta: ``join()`` is every part so far, in
    order. An erased conversation's deltas each read ``ERASED_TEXT``: a run of them is kept once
    (the last part is never chunked away, so the run is still seen), as its rows show it."""

    __slots__ = ("chunks", "parts")

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        parts = self.parts
        if text == ERASED_TEXT and parts and parts[-1] == ERASED_TEXT:
            return
        parts.append(text)
        if len(parts) > CHUNK:
            self.chunks.append("".join(parts[:-1]))
            del parts[:-1]

    def join(self) -> str:
        return "".join(self.chunks + self.parts) if self.chunks else "".join(self.parts)

    def __len__(self) -> int:
        """How many parts are held outside the chunks (at most ``CHUNK`` + 1); 0 only while no
        part was added (the last part is never chunked away)."""
        return len(self.parts)
