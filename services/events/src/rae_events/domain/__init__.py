"""Pure logic of the event engine: no driver, no FastAPI."""
