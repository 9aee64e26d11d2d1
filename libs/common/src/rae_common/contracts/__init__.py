"""Public API models shared by the service that owns a route and the gateway that exposes it."""
