"""The HTTP surface (routers, bodies, Idempotency-Key answers, errors); imports lower layers, not main."""
