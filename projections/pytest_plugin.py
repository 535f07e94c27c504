"""pytest plugin (entry point ``turnlog``): the ``transcript_snapshot`` fixture.

    def test_my_turn(transcript_snapshot):
        assert render(events) == transcript_snapshot

Each snapshot is one reviewable ``.txt`` file under ``__snapshots__/<test module>/``. Needs
syrupy (``pip install turnlog[testing]``); without it the fixture is simply not offered.
"""

from __future__ import annotations

from typing import Any

import pytest

try:
    from ._snapshot import TranscriptExtension
except ImportError:  # syrupy not installed: offer nothing rather than break the user's pytest
    TranscriptExtension = None  # type: ignore[assignment,misc]


if TranscriptExtension is not None:

    @pytest.fixture
    def transcript_snapshot(snapshot: Any) -> Any:
        return snapshot.use_extension(TranscriptExtension)
