"""Framework adapters: thin mappings of FastAPI (ASGI), Flask and Django onto the HTTP layer (halt.http)."""
