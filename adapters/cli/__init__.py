"""turnlog.adapters.cli: the ``turnlog`` command, one module per command group."""

from ._main import main

__all__ = ["main"]
