"""Drivers: the local model (sentence-transformers/torch) and its tokenizer, the Redis vector
cache, OpenAI-compatible HTTP providers, and the offline chat provider."""
