"""The SSE wire reader: server-sent events from the pieces (bytes or text) of a response body."""

from __future__ import annotations

from httpx_sse._decoders import SSELineDecoder


class SseEvents:
    """Server-sent events from the pieces of a body, by the WHATWG rules, two ways:

    - ``feed_bytes``: bytes in, each event's data as bytes. Lines are cut with ``bytes.split``
      (CR and CRLF made LF first, across piece boundaries) and the JSON is decoded from the
      bytes: no text decoding, no per-line decoder (bench/parse_throughput.py). The adapter
      reads ``feed_messages``: the same, plain events cut in one split.
    - ``feed``: text pieces, lines split by httpx-sse's ``SSELineDecoder`` (CR, LF or CRLF,
      across piece boundaries), fields interpreted here with a fast path for ``data: `` lines.

    ``tests/adapters/test_wire.py`` and ``tests/perf_behaviour/test_fast_paths.py`` check both
    give httpx-sse's events, whatever the piece boundaries.

    ``id`` and ``retry`` are read and ignored (a model stream is never resumed); comments and
    unknown fields are ignored; an event is dispatched at a blank line when it has data."""

    __slots__ = ("_bdata", "_buf", "_cr", "_data", "_event", "_lines")

    def __init__(self) -> None:
        self._lines = SSELineDecoder()
        self._event = ""
        self._data: list[str] = []
        # The bytes path (``feed_bytes``): the unfinished line, whether the last piece ended
        # with CR (a LF opening the next piece is then the same line break), the data lines.
        self._buf = b""
        self._cr = False
        self._bdata: list[bytes] = []

    # -- bytes: what the adapter reads (no text decoding; JSON is decoded from the bytes) --------

    def feed_bytes(self, piece: bytes) -> list[tuple[str, bytes]]:
        """Events completed by this piece of the body, their data as bytes (UTF-8, undecoded: a
        line break never falls inside a UTF-8 character, so bytes split where text would). The
        same rules as ``feed``: lines end at CR, LF or CRLF, across piece boundaries."""
        if not piece:
            return []
        return self._whole_lines(self._unread(piece))

    def feed_messages(self, piece: bytes) -> tuple[list[bytes], list[tuple[str, bytes]]]:
        """``feed_bytes`` with a fast path, as ``(datas, events)`` (one of them empty): when the
        events this piece completes are all plain one-line ``data: `` message events (what every
        provider sends) and no event is half read, ``datas`` holds their data, cut by one
        ``bytes.split`` (no per-line Python); otherwise ``events`` is ``feed_bytes``'s answer.

        Purity is checked in C: the complete part (up to the last blank line) must start with
        ``data: `` and, once split at each ``\\n\\ndata: ``, hold no other LF, so its lines
        alternate ``data: X`` and blank. Lines after the last blank line stay in
        the buffer (not in the event being built): the next piece, or ``close_bytes``, reads
        them as ``feed_bytes`` would have. ``tests/perf_behaviour/test_batched_reads.py``
        checks both give the same events, whatever the piece boundaries."""
        if self._bdata or self._event or not piece:
            return [], self.feed_bytes(piece)
        buf = self._unread(piece)
        end = buf.rfind(b"\n\n")
        if end > 0 and buf[:6] == b"data: ":
            datas = buf[6:end].split(b"\n\ndata: ")
            if b"\n" not in b"".join(datas):  # (``in`` is a memchr; ``count`` of one byte is not)
                self._buf = buf[end + 2 :]
                return datas, []
        # The general path, from the same state (the CR handling is done: ``_cr`` is set again).
        return [], self._whole_lines(buf)

    def _unread(self, piece: bytes) -> bytes:
        """What is left to read: the buffer, then ``piece``, every line break made LF (CR, LF or
        CRLF; a CR ending the last piece and a LF opening this one are one break)."""
        if self._cr:
            self._cr = False
            if piece[:1] == b"\n":
                piece = piece[1:]
        buf = self._buf + piece if self._buf else piece
        if b"\r" in buf:
            self._cr = buf[-1:] == b"\r"
            buf = buf.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        return buf

    def _whole_lines(self, buf: bytes) -> list[tuple[str, bytes]]:
        """The events the whole lines of ``buf`` complete; the unfinished last line is kept."""
        end = buf.rfind(b"\n")
        if end < 0:
            self._buf = buf
            return []
        self._buf = buf[end + 1 :]
        return self._byte_fields(buf[:end].split(b"\n"))

    def close_bytes(self) -> list[tuple[str, bytes]]:
        """The end of the body: a last event without its blank line is still dispatched (the
        buffer may hold whole lines left by ``feed_messages``)."""
        rest, self._buf = self._buf, b""
        return self._byte_fields([*rest.split(b"\n"), b""] if rest else [b""])

    def _byte_fields(self, lines: list[bytes]) -> list[tuple[str, bytes]]:
        out: list[tuple[str, bytes]] = []
        data = self._bdata
        for line in lines:
            if not line:
                if data:
                    out.append((self._event or "message", data[0] if len(data) == 1 else b"\n".join(data)))
                    data = self._bdata = []
                self._event = ""
            elif line[:6] == b"data: ":
                data.append(line[6:])
            elif line[0] != 58:  # not a comment (":")
                name, _, value = line.partition(b":")
                if value[:1] == b" ":
                    value = value[1:]
                if name == b"data":
                    data.append(value)
                elif name == b"event":
                    self._event = value.decode("utf-8", "replace")
        return out

    # -- text -----------------------------------------------------------------------------------

    def feed(self, text: str) -> list[tuple[str, str]]:
        return self._fields(self._lines.decode(text))

    def close(self) -> list[tuple[str, str]]:
        """The end of the body: a last event without its blank line is still dispatched."""
        return self._fields([*self._lines.flush(), ""])

    def _fields(self, lines: list[str]) -> list[tuple[str, str]]:
        out: list[tuple[str, str]] = []
        data = self._data
        for line in lines:
            if not line:
                if data:
                    out.append((self._event or "message", data[0] if len(data) == 1 else "\n".join(data)))
                    data = self._data = []
                self._event = ""
                continue
            if line.startswith("data: "):
                data.append(line[6:])
                continue
            if line[0] == ":":
                continue
            name, _, value = line.partition(":")
            if value.startswith(" "):
                value = value[1:]
            if name == "data":
                data.append(value)
            elif name == "event":
                self._event = value
        return out
