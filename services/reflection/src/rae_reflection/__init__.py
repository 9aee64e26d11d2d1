"""RAE reflection service: reflections with provenance (port 8004)."""
