"""Step numbering, shared by the SSE frames and the stored rows so the two can never disagree.

One counter per turn (the seed counted tool steps a second way, by ``len(all_steps)``). A thinking
step opens at the first reasoning delta of an iteration, a text step at the first text delta,
a tool_call step at each ToolCallStarted and a tool_result step at each ToolResultRecorded.
"""

from __future__ import annotations

from turnlog.engine import (
    IterationStarted,
    ToolCallStarted,
    ToolResultRecorded,
    TurnStarted,
)


class TurnSteps:
    __slots__ = ("call_step", "next_index", "text_step", "thinking_step")

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.next_index = 0
        self.thinking_step: int | None = None
        self.text_step: int | None = None
        self.call_step: dict[str, int] = {}

    def _open(self) -> int:
        index = self.next_index
        self.next_index += 1
        return index

    def thinking(self) -> tuple[int, bool]:
        """(index of this iteration's thinking step, whether this delta opened it)."""
        if self.thinking_step is None:
            self.thinking_step = self._open()
            return self.thinking_step, True
        return self.thinking_step, False

    def text(self) -> tuple[int, bool]:
        if self.text_step is None:
            self.text_step = self._open()
            return self.text_step, True
        return self.text_step, False

    def tool_call(self, ev: ToolCallStarted) -> int:
        index = self._open()
        self.call_step[ev.call_id] = index
        return index

    def tool_result(self, ev: ToolResultRecorded) -> tuple[int, int]:
        """(index of the result step, index of the call step it answers)."""
        return self._open(), self.call_step.get(ev.call_id, -1)

    def on_phase(self, ev: object) -> None:
        if isinstance(ev, IterationStarted):
            self.thinking_step = None
            self.text_step = None
        elif isinstance(ev, TurnStarted):
            self.reset()


def step_id(index: int) -> str:
    return f"step-{index}"
