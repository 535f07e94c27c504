"""turnlog.projections: pure folds over the event log."""
