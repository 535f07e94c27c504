"""Contract suite for message-row stores."""
