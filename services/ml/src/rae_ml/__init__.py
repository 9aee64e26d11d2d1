"""RAE ml service: embeddings, generation and extraction with token/cost reporting (port 8002)."""
