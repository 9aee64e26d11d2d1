"""Pure logic of the graph service: no driver, no FastAPI."""
