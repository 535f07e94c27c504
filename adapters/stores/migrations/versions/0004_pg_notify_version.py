"""PostgreSQL: the append's NOTIFY names the batch's last version too (payload ``VERSION:STREAM``).

A process that committed a batch hands it to its own followers directly; the NOTIFY of that
same commit then reaches its listener too. With the version in the payload the listener can tell
an echo of its own commit (a version its followers already have) from news, and a follower does
not read back what its process just wrote. SQLite: nothing to do.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _previous_function() -> str:
    # The function as 0003 created it (the module's name starts with a digit: load it by path).
    spec = importlib.util.spec_from_file_location(
        "_turnlog_0003", Path(__file__).with_name("0003_pg_append_function.py")
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.FUNCTION


OLD_NOTIFY = "PERFORM pg_notify(p_channel, p_stream);"
NEW_NOTIFY = "PERFORM pg_notify(p_channel, p_versions[array_upper(p_versions, 1)]::text || ':' || p_stream);"


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        previous = _previous_function()
        assert OLD_NOTIFY in previous
        op.execute(previous.replace(OLD_NOTIFY, NEW_NOTIFY))


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute(_previous_function())
