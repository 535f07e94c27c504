"""Trimming the history to a token budget: a hook on the engine (``EngineConfig.history_trim``).

At a turn's start, when ``EngineConfig.history_tokens`` is set, the hook is handed the messages
the request would carry (the system prompt, the earlier turns in full, the current user message,
as the wire dicts ``LLMRequest.messages`` holds) and the budget, and returns them with whole
oldest turns left out. The engine checks that it did just that (the system prompt and the current
message kept, the rest a suffix of whole turns: a tool call is never parted from its result) and
records how many turns were dropped (``TurnStarted.history_dropped``), so the turn's requests
still rebuild from the log alone. A hook that returns anything else refuses the turn
(``ConfigError``), nothing written.

The default hook, ``trim_oldest_turns``, estimates tokens as characters / 4 (rounded up) plus 4 per
message (``estimate_tokens``): no tokenizer, no dependency, within tens of percent of the real
count for English text; set a budget with that margin. The tools' schemas are not counted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ._errors import ConfigError

#: ``(messages, budget) -> messages``: see the module's docstring.
HistoryTrim = Callable[[list[dict[str, Any]], int], Sequence[dict[str, Any]]]


def estimate_tokens(message: dict[str, Any]) -> int:
    """A message's tokens, estimated: its characters (content, reasoning, tool calls' names and
    arguments) / 4, rounded up, plus 4 for the message's framing."""
    chars = len(message.get("content") or "") + len(message.get("reasoning_content") or "")
    for call in message.get("tool_calls") or ():
        fn = call.get("function", {})
        chars += len(fn.get("name", "")) + len(fn.get("arguments", ""))
    return 4 + (chars + 3) // 4


def _turn_starts(messages: Sequence[dict[str, Any]], first: int, end: int) -> list[int]:
    return [i for i in range(first, end) if messages[i].get("role") == "user"]


def trim_oldest_turns(messages: list[dict[str, Any]], budget: int) -> list[dict[str, Any]]:
    """Leave out the oldest whole turns until the estimate fits ``budget`` (or only the system
    prompt and the current message are left)."""
    first = 1 if messages and messages[0].get("role") == "system" else 0
    last = len(messages) - 1
    total = sum(estimate_tokens(m) for m in messages)
    starts = [*_turn_starts(messages, first, last), last]
    cut = 0  # turns dropped
    while total > budget and cut < len(starts) - 1:
        total -= sum(estimate_tokens(m) for m in messages[starts[cut] : starts[cut + 1]])
        cut += 1
    return messages[:first] + messages[starts[cut] :]


def apply_trim(trim: HistoryTrim, messages: list[dict[str, Any]], budget: int) -> int:
    """Run the hook; return how many of the oldest earlier turns it left out (checked)."""
    first = 1 if messages and messages[0].get("role") == "system" else 0
    last = len(messages) - 1
    kept = list(trim(list(messages), budget))
    dropped = len(messages) - len(kept)
    starts = [*_turn_starts(messages, first, last), last]
    ok = (
        0 <= dropped <= last - first
        and kept[:first] == messages[:first]
        and kept[first:] == messages[first + dropped :]
        and first + dropped in starts
    )
    if not ok:
        raise ConfigError(
            "EngineConfig.history_trim must return the messages it was given with whole oldest turns left out "
            "(the system prompt and the current message kept, nothing else changed); it returned something else"
        )
    return starts.index(first + dropped)
