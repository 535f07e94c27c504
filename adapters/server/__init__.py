"""turnlog.adapters.server: the HTTP service (Starlette; the ``server`` extra).

``TurnService`` runs and recovers turns over a store; ``create_app`` wraps it as an ASGI app with
resumable SSE streams; ``TokenAuth`` and ``open_access`` turn a request's bearer token into a
``Principal``; ``ServerConfig`` holds every limit.
"""

from ._app import NewConversation, NewTurn, Principal, ServerConfig, TokenAuth, TurnService, create_app, open_access

__all__ = [
    "NewConversation",
    "NewTurn",
    "Principal",
    "ServerConfig",
    "TokenAuth",
    "TurnService",
    "create_app",
    "open_access",
]
