"""``TurnFailure``: how a running turn stops early.

The model call (a provider error, an adapter that raised), the turn loop (too many iterations)
and a cancel of the turn (``CancelWatch.failure``) raise it; ``TurnEngine.run_turn`` catches it
and ends the turn with a committed ``TurnFailed`` carrying its ``reason`` and ``message``. It
never escapes the engine.
"""

from __future__ import annotations


class TurnFailure(Exception):
    def __init__(self, reason: str, message: str) -> None:
        #: The ``TurnFailed.reason`` code: "llm_error", "internal", "max_iterations", "cancelled".
        self.reason = reason
        self.message = message
        super().__init__(message)
