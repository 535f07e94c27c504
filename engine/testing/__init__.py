"""Contract suites for implementers of turnlog.engine ports (filled in below)."""
