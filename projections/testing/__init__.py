"""turnlog.projections.testing: the row store's contract as a test suite that ships with the
package. A ``MessageStore`` is done when it passes::

    from turnlog.projections.testing import MessageStoreContract

    class TestMyRows(MessageStoreContract):
        async def open_rows(self):
            return InMemoryEventLog(), MyRows(...)

``open_rows`` gives a fresh event log and an empty row store for each test, as ``(log,
messages)``: the port methods (``history``, ``catch_up``) read that log, and the engine runs turns
on it with the rows as its ``Messages`` port. Rows kept beside the log come from one factory::

        async def open_rows(self):
            return await open_store(self.tmp_path / "rows.db")  # turnlog.adapters.stores

The log is closed after each test; ``self.tmp_path`` is the test's temporary directory. The
tests are marked for pytest-asyncio and run in its strict mode too.

A row store that keeps the conversations' summaries (``MessageStore.conversations``) passes
``ConversationIndexContract`` too, with the same ``open_rows``.
"""

import inspect as _inspect

from pytest import register_assert_rewrite as _register_assert_rewrite

# Failing asserts in the contract show their values (pytest rewrites them): registered before the
# modules are imported, as pytest's docs ask of a plugin's helper modules.
_register_assert_rewrite(
    "turnlog.projections.testing._support",
    "turnlog.projections.testing._rows_contract",
    "turnlog.projections.testing._port_contract",
    "turnlog.projections.testing._conversations_contract",
)

from ._conversations_contract import ConversationIndexContract  # noqa: E402
from ._port_contract import PortContract as _PortContract  # noqa: E402
from ._rows_contract import RowsContract as _RowsContract  # noqa: E402


class MessageStoreContract(_RowsContract, _PortContract):
    """Every promise of ``turnlog.projections.MessageStore``, one test method each: upsert by
    id, rows in ``seq`` order per conversation, every field round-tripped, ``applied_version``,
    ``clear``, ``live_conversations``; and as the engine's ``Messages`` port: ``sink`` saves a
    batch's rows before it returns, ``catch_up`` and ``history`` bring rows that fell behind up to
    the log, and ``history`` equals the history the engine folds from the log itself
    (``turnlog.engine.LogHistory``) after turns that end every way. Subclass it as ``Test...`` and
    define ``open_rows``."""


__all__ = ["ConversationIndexContract", "MessageStoreContract"]

# Exported classes and functions report this package as their ``__module__`` (as httpx's do), so
# reprs, tracebacks and docs name the public path, never a private module.
for _obj in map(globals().get, __all__):
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = __name__
