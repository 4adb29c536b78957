"""Items API: a FastAPI app served on AWS Lambda through Mangum.

Layers, lowest first; a module imports only from its own layer or lower ones:

1. ``settings``, ``observability``, ``blocking`` (and the shared ``items_core`` layer)
2. ``store/``: DynamoDB access (items, idempotency records, cursors); ``limits``: per-owner rates
3. ``auth``, ``preconditions``: who calls, and what conditional headers ask; ``sam_local``: the
   dev-token check, under `make run` and `sam local` only
4. ``dependencies``: FastAPI dependencies and the once-per-container clients
5. ``edge`` (the one ASGI middleware) and ``routes/``
6. ``main``: ``create_app`` and the Lambda ``handler``
"""
