"""turnlog.engine.testing: the event log's contract as a test suite that ships with the package
(as eventsourcing ships its recorder tests). A store is done when it passes::

    from turnlog.engine.testing import EventLogContract

    class TestMyLog(EventLogContract):
        async def open_log(self):
            return await MyLog.open(self.tmp_path / "log.db")

        async def open_again(self, log):  # optional: a second instance over the same data
            return await MyLog.open(self.tmp_path / "log.db")

``open_log`` gives a fresh, empty log for each test; ``open_again`` (None by default: the store
cannot be opened twice) another instance over the same data, as a second app server or process
would open it; the tests of concurrency, of follow across instances and of reopening after close
use it. Set ``wakes_other_instances = True`` when an append through one instance wakes another's
subscribers at once (PostgreSQL's LISTEN/NOTIFY). Every instance the hooks open is closed after
the test; ``self.tmp_path`` is the test's temporary directory. The tests are marked for
pytest-asyncio and run in its strict mode too.

``CheckpointContract`` is the contract of a store that also keeps checkpoints
(``turnlog.engine.CheckpointLog``): subclass it the same way, with the same hooks.

``RECORDED_AT``, ``deltas`` and ``take`` help with tests of one's own beside the contract.
"""

import inspect as _inspect

from pytest import register_assert_rewrite as _register_assert_rewrite

# Failing asserts in the contract show their values (pytest rewrites them): registered before the
# modules are imported, as pytest's docs ask of a plugin's helper modules.
_register_assert_rewrite(
    "turnlog.engine.testing._support", "turnlog.engine.testing._log_contract", "turnlog.engine.testing._follow_contract"
)
_register_assert_rewrite("turnlog.engine.testing._checkpoint_contract")

from ._checkpoint_contract import CheckpointContract  # noqa: E402
from ._follow_contract import FollowContract as _FollowContract  # noqa: E402
from ._log_contract import ReadWriteContract as _ReadWriteContract  # noqa: E402
from ._log_contract import StorageContract as _StorageContract  # noqa: E402
from ._support import RECORDED_AT, Instances, deltas, take  # noqa: E402


class EventLogContract(_ReadWriteContract, _StorageContract, _FollowContract):
    """Every promise of ``turnlog.engine.EventLog``, one test method each: the readers and
    paging, optimistic concurrency within and across instances, atomic batches, gapless versions
    and positions in commit order, the pinned hash chain, unicode and large payloads, close, and
    ``subscribe``/``follow`` (catch-up then live, no gap or duplicate at the hand-over, wake-ups
    across instances, followers that leave nothing behind). Subclass it as ``Test...`` and
    define ``open_log`` (and ``open_again`` for a shared store)."""


__all__ = ["RECORDED_AT", "CheckpointContract", "EventLogContract", "Instances", "deltas", "take"]

# Exported classes and functions report this package as their ``__module__`` (as httpx's do), so
# reprs, tracebacks and docs name the public path, never a private module.
for _obj in map(globals().get, __all__):
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = __name__
