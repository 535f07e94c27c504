"""turnlog.engine: events, the turn state machine, the event log and the engine that runs turns."""
