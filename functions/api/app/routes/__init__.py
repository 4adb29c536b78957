"""The HTTP surface: routers, request-body parsing and the mapping of exceptions to responses.

May import everything below it (dependencies, auth, store, settings, items_core); never main.
"""
