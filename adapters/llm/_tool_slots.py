"""Tool-call fragments routed to slots: which call of a model's answer each fragment belongs to.

A slot is the ``index`` of the emitted ``ToolCallChunk``. Fragments are routed by ``index`` when
present, by ``id`` or position otherwise (Mistral, Ollama omit the index); a fragment that reuses
an index with a new id *and* a name starts a new call (some gateways number every parallel call
0); a new id without a name is a continuation (servers that mint an id per fragment). Arguments
sent as a JSON object are encoded to text. Pure, no I/O.
"""

from __future__ import annotations

from typing import Any

import msgspec
from turnlog.engine import ToolCallChunk

_encode = msgspec.json.encode


class ToolSlots:
    """The slot table of one model response (``StreamNormalizer`` holds one)."""

    __slots__ = ("by_id", "by_index", "ids", "last", "names")

    def __init__(self) -> None:
        #: the provider's index -> slot, and call id -> slot
        self.by_index: dict[int, int] = {}
        self.by_id: dict[str, int] = {}
        #: each slot's first id and name
        self.ids: list[str | None] = []
        self.names: list[str | None] = []
        #: the slot of the last fragment (-1 before the first)
        self.last = -1

    def route(self, call: dict[str, Any], position: int) -> ToolCallChunk:
        """The chunk of one tool-call fragment, its slot found (or opened) from its index, id, name
        and position in its event."""
        fn = call.get("function")
        if not isinstance(fn, dict):
            fn = {}
        call_id = call.get("id") or None
        if call_id is not None and type(call_id) is not str:
            call_id = str(call_id)
        name = fn.get("name") or None
        if name is not None and type(name) is not str:
            name = str(name)
        args = fn.get("arguments")
        if args is not None and type(args) is not str:
            args = _encode(args).decode()
        slot = self._slot(call.get("index"), call_id, name, position)
        if call_id is not None and self.ids[slot] is None:
            self.ids[slot] = call_id
            self.by_id[call_id] = slot
        if name is not None and self.names[slot] is None:
            self.names[slot] = name
        self.last = slot
        return ToolCallChunk(slot, call_id, name, args or None)

    def _new_slot(self) -> int:
        self.ids.append(None)
        self.names.append(None)
        return len(self.ids) - 1

    def _slot(self, index: Any, call_id: str | None, name: str | None, position: int) -> int:
        if type(index) is int:
            slot = self.by_index.get(index)
            if slot is None:
                slot = self.by_id.get(call_id) if call_id is not None else None
                if slot is None:
                    slot = self._new_slot()
                self.by_index[index] = slot
                return slot
            known = self.ids[slot]
            if call_id is not None and name is not None and known is not None and call_id != known:
                # A new call under a reused index (gateways that number every call 0).
                slot = self.by_id.get(call_id, -1)
                if slot < 0:
                    slot = self._new_slot()
                self.by_index[index] = slot
            return slot
        # No index (Mistral, Ollama): route by id, else a named fragment starts a call unless the
        # current one still lacks its name, else it continues the current call.
        if call_id is not None:
            slot = self.by_id.get(call_id, -1)
            if slot >= 0:
                return slot
            if self.last >= 0 and self.ids[self.last] is None and position == 0 and name is None:
                return self.last
            return self._new_slot()
        if self.last < 0:
            return self._new_slot()
        if name is not None and self.names[self.last] is not None and name != self.names[self.last]:
            return self._new_slot()
        if position > 0 and name is not None:
            return self._new_slot()
        return self.last
