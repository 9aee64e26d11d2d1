"""Drivers: the local model (sentence-transformers/torch) and the Redis vector cache."""
