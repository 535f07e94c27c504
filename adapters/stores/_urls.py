"""PostgreSQL URLs as turnlog accepts them, and the forms each client library wants.

Accepted: ``postgresql://``, ``postgres://`` and ``postgresql+asyncpg://``, with an optional
``?schema=NAME`` that puts every turnlog table (and the migration version table) in that
PostgreSQL schema. The parameter is turnlog's, not the server's: it is stripped before
connecting and becomes the connection's ``search_path``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from turnlog.engine import ConfigError

PG_SCHEMES = ("postgresql://", "postgres://", "postgresql+asyncpg://")
IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


def is_pg_url(url: str) -> bool:
    return url.startswith(PG_SCHEMES)


@dataclass(frozen=True)
class PgTarget:
    #: For asyncpg: ``postgresql://...`` without the schema parameter.
    dsn: str
    #: None: the server's default search_path (normally ``public``).
    schema: str | None

    @property
    def sqlalchemy_url(self) -> str:
        return "postgresql+asyncpg://" + self.dsn.split("://", 1)[1]

    @property
    def server_settings(self) -> dict[str, str]:
        return {"search_path": self.schema} if self.schema else {}

    @property
    def where(self) -> str:
        """The URL without its password, for messages and logs."""
        return redact(self.dsn) + (f"?schema={self.schema}" if self.schema else "")


def parse_pg_url(url: str) -> PgTarget:
    if not is_pg_url(url):
        raise ConfigError(f"not a PostgreSQL URL: {redact(url)!r} (expected postgresql://...)")
    parts = urlsplit("postgresql://" + url.split("://", 1)[1])
    query = parse_qsl(parts.query, keep_blank_values=True)
    schemas = [v for k, v in query if k == "schema"]
    rest = [(k, v) for k, v in query if k != "schema"]
    schema = schemas[-1] if schemas else None
    if schema is not None and not IDENT.match(schema):
        # The name goes into DDL and the search_path: only plain identifiers, never quoting games.
        raise ConfigError(
            f"invalid schema name {schema!r} in the PostgreSQL URL: use letters, digits and _ (at most 63)"
        )
    dsn = urlunsplit((parts.scheme, parts.netloc, parts.path, urlencode(rest), ""))
    return PgTarget(dsn, schema)


def redact(url: str) -> str:
    """``postgresql://user:secret@host/db`` → ``postgresql://user:***@host/db``."""
    return re.sub(r"(://[^:/@]*:)[^@]*@", r"\1***@", url)
