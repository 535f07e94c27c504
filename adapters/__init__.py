"""turnlog.adapters: every piece of I/O, one subpackage per kind of outside world.

- ``turnlog.adapters.stores``: the SQLite and PostgreSQL event logs, the SQL message rows, the
  schema and its migrations, and ``open_store`` (one factory for the CLI, the tests and users).
- ``turnlog.adapters.llm``: the OpenAI-compatible streaming client, providers, recorded and
  scripted models, and a local fake provider server.
- ``turnlog.adapters.server``: the HTTP service (needs the ``server`` extra).
- ``turnlog.adapters.cli``: the ``turnlog`` command.

Nothing is imported here, so ``import turnlog.adapters.llm`` does not load Starlette or asyncpg.
"""

__all__: list[str] = []
