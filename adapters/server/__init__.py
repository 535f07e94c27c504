"""turnlog.adapters.server: the HTTP service (Starlette; the ``server`` extra).

``TurnService`` runs and recovers turns over a store; ``create_app`` wraps it as an ASGI app with
resumable SSE streams (and ``GET /openapi.json``); ``mount(app, "/chat", service)`` embeds it in a
Starlette or FastAPI app whose lifespan then runs the service's; ``TokenAuth`` and ``open_access`` (or any ``Authenticator``, which receives
the request; ``bearer_token`` reads its header) turn a request into a ``Principal``;
``ServerConfig`` holds every limit and setting (``uvicorn_config`` applies its connection limits
to uvicorn, as ``turnlog serve`` does); a ``Policy`` (default ``ServerPolicy``) decides
what a request may choose: the model, the system prompt, the limits, the tools
(``ConversationDecision``, ``TurnDecision``); ``ERROR_STATUS`` maps each error ``code`` to the
HTTP status the service answers with.

The modules, one concept each: ``_app`` (routes), ``_mount`` (embedding), ``_openapi`` (the
document), ``_service`` (engines and the turns this
process runs), ``_frames`` (SSE), ``_tenancy`` (who may read, write or audit which conversation),
``_recovery`` (turns left live by a crash), ``_rows`` (message rows), ``_policy`` (what a request
may choose), ``_connections`` (uvicorn's deadlines and cap), ``_auth``, ``_bodies``, ``_errors``,
``_config``.
"""

import inspect as _inspect

import msgspec as _msgspec

from ._app import create_app
from ._auth import Authenticator, Principal, TokenAuth, bearer_token, open_access
from ._bodies import NewConversation, NewTurn
from ._config import ServerConfig
from ._connections import uvicorn_config
from ._errors import ERROR_STATUS
from ._mount import mount
from ._policy import ConversationDecision, Policy, ServerPolicy, TurnDecision
from ._service import TurnService

__all__ = [
    "ERROR_STATUS",
    "Authenticator",
    "ConversationDecision",
    "NewConversation",
    "NewTurn",
    "Policy",
    "Principal",
    "ServerConfig",
    "ServerPolicy",
    "TokenAuth",
    "TurnDecision",
    "TurnService",
    "bearer_token",
    "create_app",
    "mount",
    "open_access",
    "uvicorn_config",
]

# Exported classes and functions report this package as their ``__module__`` (as httpx's do), so
# reprs, tracebacks and docs name the public path. msgspec resolves a Struct's string annotations
# in its module's namespace on first use: each Struct is resolved (and cached) before the rename.
for _obj in map(globals().get, __all__):
    if isinstance(_obj, type) and issubclass(_obj, _msgspec.Struct):
        _msgspec.json.Decoder(_obj)
    if isinstance(_obj, type) or _inspect.isfunction(_obj):
        _obj.__module__ = __name__
