"""``TextParts``: a text that grows a delta at a time, for every fold that collects streamed text
(the request builder's here; the message rows' and the transcript's in ``turnlog.projections``,
which show an erased conversation's run of ``[erased]`` once: ``ShownText`` there)."""

from __future__ import annotations

#: A text's parts are joined into one chunk once they are this many: memory holds the text (in
#: chunks of a few thousand deltas, each joined once) and at most this many parts, not an object
#: per delta (a 1M-delta answer is ~4 MB of text, not ~60 MB of parts).
CHUNK = 4096


class TextParts:
    """A text that grows a delta at a time, O(1) per delta: ``join()`` is every part so far, in
    order, exactly as added (the request builder's text is what the model is sent). The last part
    is never chunked away, so a subclass can look at it (``ShownText``)."""

    __slots__ = ("chunks", "parts")

    def __init__(self) -> None:
        self.chunks: list[str] = []
        self.parts: list[str] = []

    def add(self, text: str) -> None:
        parts = self.parts
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
