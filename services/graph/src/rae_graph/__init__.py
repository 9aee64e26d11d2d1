"""RAE graph service: the knowledge graph and GraphRAG (port 8003)."""
