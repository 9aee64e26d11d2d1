"""RAE gateway: the only public API (port 8000)."""
