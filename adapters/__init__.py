"""turnlog.adapters: the outside world (LLM providers, CLI, HTTP server)."""
