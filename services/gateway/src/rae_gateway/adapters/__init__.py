"""Drivers of the gateway: the Postgres store of tenants and API keys."""
