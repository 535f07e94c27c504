"""``StreamNormalizer.messages`` reads the usual tool-call fragment (a known index's arguments, no
id, no name) without ``ToolSlots.route``: on every awkward fragment shape, in random orders, it gives the
general walk's chunks (``_chunk``) and leaves the same slot table behind."""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from turnlog.adapters.llm import StreamNormalizer
from turnlog.adapters.llm._normalise import _decode_chunk

#: Tool calls as providers send them, and as they should not but might: each is one fragment.
CALLS: list[Any] = [
    {"index": 0, "function": {"arguments": '{"a": '}},
    {"index": 0, "function": {"arguments": "1}"}},
    {"index": 0, "function": {"arguments": ""}},
    {"index": 0, "function": {"arguments": None}},
    {"index": 0, "function": {"arguments": {"as": "object"}}},
    {"index": 0, "function": {"name": "", "arguments": "x"}},
    {"index": 0, "id": "", "function": {"arguments": "y"}},
    {"index": 0, "id": "call_a", "type": "function", "function": {"name": "search", "arguments": ""}},
    {"index": 0, "id": "call_b", "function": {"name": "fetch", "arguments": "{}"}},  # index reused
    {"index": 0, "id": "call_c", "function": {"arguments": "z"}},  # an id per fragment
    {"index": 1, "function": {"arguments": "w"}},
    {"index": 1, "id": "call_d", "function": {"name": "read", "arguments": ""}},
    {"index": 7, "function": {"arguments": "unseen index"}},
    {"index": "0", "function": {"arguments": "index as text"}},
    {"index": 0.0, "function": {"arguments": "index as float"}},
    {"index": True, "function": {"arguments": "index as bool"}},
    {"function": {"arguments": "no index"}},
    {"id": "call_e", "function": {"name": "list", "arguments": ""}},
    {"function": {"name": "other", "arguments": "named, no index"}},
    {"index": 0, "function": "not an object"},
    {"index": 0},
    {"index": 0, "function": {"name": 5, "arguments": 6}},
    {"index": 0, "id": 9, "function": {"arguments": "numeric id"}},
    "not a call",
    None,
]


def event(calls: Any, **delta: Any) -> bytes:
    return json.dumps({"id": "x", "choices": [{"index": 0, "delta": {**delta, "tool_calls": calls}}]}).encode()


def state(norm: StreamNormalizer) -> tuple[Any, ...]:
    t = norm.tools
    return (t.last, t.ids, t.names, t.by_index, t.by_id, norm.events, norm.finished)


@pytest.mark.parametrize("seed", range(8))
def test_tool_fragments_make_the_general_walks_chunks_and_slots(seed: int) -> None:
    rnd = random.Random(seed)
    datas: list[bytes] = []
    for _ in range(300):
        calls = [rnd.choice(CALLS) for _ in range(rnd.choice((1, 1, 1, 2, 3)))]
        extra = rnd.choice(({}, {}, {"content": "t"}, {"reasoning_content": "r"}, {"function_call": {"name": "f"}}))
        datas.append(event(rnd.choice((calls, calls, calls, [], {"not": "a list"})), **extra))
    fast, slow = StreamNormalizer(), StreamNormalizer()
    fast_paths = 0
    for data in datas:
        got: list[Any] = []
        assert fast.messages([data], 0, got) == 1
        slow.events += 1
        expected = slow._chunk(_decode_chunk(data), "delta")
        assert got == expected, data
        assert state(fast) == state(slow), data
        fast_paths += sum(1 for c in got if getattr(c, "id", 1) is None and getattr(c, "name", 1) is None)
    assert fast_paths > 50  # continuations did come
