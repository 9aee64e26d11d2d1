"""Pure gateway logic: API key format and hashing, rate-limit resolution. No drivers, no FastAPI."""
