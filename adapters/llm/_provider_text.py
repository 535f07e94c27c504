"""Provider words in error messages: a provider's error payload or non-2xx body read for its own
message, cut to a bounded length, with secrets masked before the cut. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

#: Longest provider error text kept in a message; the rest is cut (with a marker).
MAX_ERROR_TEXT = 500

_decode_any = msgspec.json.Decoder().decode
_encode = msgspec.json.encode

Redact = Callable[[str], str]


def _keep(text: str) -> str:
    return text


def clip(text: str, limit: int = MAX_ERROR_TEXT, redact: Redact = _keep) -> str:
    """Provider text cut to ``limit`` characters for an error message. Secrets are masked BEFORE
    the cut (``redact``): masking after it would miss a key the cut splits, leaving its prefix."""
    text = " ".join(redact(text).split())
    return text if len(text) <= limit else text[:limit] + f"... [{len(text) - limit} more characters]"


def error_text(error: Any, redact: Redact = _keep) -> str:
    """The provider's own words from an error payload of any common shape."""
    if isinstance(error, str):
        return clip(error, redact=redact)
    if isinstance(error, list) and error:
        return error_text(error[0], redact)
    if isinstance(error, dict):
        inner = error.get("error")
        if inner is not None and inner is not error:
            text = error_text(inner, redact)
            if text:
                return text
        code = error.get("code")
        suffix = f" (code {code})" if isinstance(code, (int, str)) and code != "" else ""
        for key in ("message", "detail", "msg", "error_description", "title"):
            value = error.get(key)
            if isinstance(value, str) and value:
                return clip(value, redact=redact) + suffix
            if isinstance(value, (dict, list)) and value:
                return error_text(value, redact)
        code = error.get("code") or error.get("type")
        if code is not None:
            return clip(f"error {code}: {_encode(error).decode()}", redact=redact)
        return clip(_encode(error).decode(), redact=redact)
    if error is None:
        return ""
    return clip(str(error), redact=redact)


def body_error_text(body: bytes, redact: Redact = _keep) -> str:
    """The provider's message in a non-2xx response body: JSON ``error.message`` / ``message``
    when it is JSON, else the (cut) text itself."""
    text = body.decode("utf-8", "replace").strip()
    if not text:
        return "(empty body)"
    try:
        obj = _decode_any(body)
    except msgspec.DecodeError:
        return clip(text, redact=redact)
    found = error_text(obj, redact)
    return found or clip(text, redact=redact)
