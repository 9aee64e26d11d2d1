"""RAE events service: the event engine (port 8006)."""
