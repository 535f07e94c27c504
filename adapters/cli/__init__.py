"""turnlog.adapters.cli: the ``turnlog`` command, one module per command group."""

from ._main import main

__all__ = ["main"]

# Reprs, tracebacks and docs name the public path, as every package's exports do.
main.__module__ = __name__
