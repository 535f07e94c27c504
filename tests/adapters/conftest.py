"""Where the recorded provider streams are.

The corpus is vendored in ``tests/adapters/corpus/openai-streams`` (a copy of the project's
shared recordings, MANIFEST.tsv included) so a fresh clone tests the adapter on its own.
``TURNLOG_CORPUS`` points the suite at another folder of recordings of the same layout.
"""

from __future__ import annotations

import os
from pathlib import Path

CORPUS = Path(os.environ.get("TURNLOG_CORPUS") or Path(__file__).parent / "corpus" / "openai-streams")
