"""RAE memory service: memories, documents and hybrid search (port 8001)."""
