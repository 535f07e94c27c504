"""``GET /usage``: a tenant's tokens and cost, from the usage ledger.

    GET /usage?by=conversation|subject|tenant|model|day&since=DAY|TIME&until=DAY|TIME

Who may read it: a principal at ``ServerConfig.usage_level`` or above (403 below it: a tenant's
usage says what every subject did). It answers the caller's own tenant only, whatever its level:
the server never crosses tenants (as conversations answer 404 across them); the operator's view of
every tenant is ``turnlog usage --db``. ``since`` is inclusive, ``until`` exclusive, on the time
the usage was recorded (UTC); a bad value is 422 ``invalid_query``. Costs come from
``ServerConfig.prices`` (``turnlog serve --prices FILE``): decimal strings, or null with the
group's unpriced models listed.

The answer is one ``GROUP BY`` over the ledger's rows of the range (the ``(tenant,
recorded_at)`` index): its size is the number of groups, not of model calls.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from turnlog.engine import ConfigError, RequestError
from turnlog.projections import USAGE_DIMENSIONS, MessageStore, UsageQuery, usage_report

from ._auth import Authenticator, principal_of
from ._config import ServerConfig

_JSON = "application/json"


class _Service(Protocol):
    config: ServerConfig
    authenticate: Authenticator
    messages: MessageStore


def routes(service_of: Callable[[Request], _Service]) -> list[Route]:
    """``GET /usage``. ``service_of``: the app's way to find its started service."""

    async def usage(request: Request) -> Response:
        service = service_of(request)
        who = await principal_of(request, service.authenticate)
        if who.level < service.config.usage_level:
            raise RequestError("forbidden", f"reading usage needs permission level {service.config.usage_level}")
        params = request.query_params
        unknown = sorted(set(params) - {"by", "since", "until"})
        if unknown:
            raise RequestError("invalid_query", f"unknown query parameters {unknown}; use by, since, until")
        by = params.get("by", "conversation")
        if by not in USAGE_DIMENSIONS:
            raise RequestError("invalid_query", f"by must be one of {', '.join(USAGE_DIMENSIONS)}, not {by!r}")
        try:
            query = UsageQuery(by=by, tenant=who.tenant, since=params.get("since"), until=params.get("until"))
        except ConfigError as exc:
            raise RequestError("invalid_query", str(exc)) from None
        ledger = service.messages.usage
        if ledger is None:
            raise RequestError("not_found", "this server's store keeps no usage ledger")
        report = await usage_report(ledger, query, service.config.prices)
        return Response(msgspec.json.encode(report), media_type=_JSON)

    return [Route("/usage", usage, methods=["GET"])]
