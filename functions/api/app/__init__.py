"""Items API, FastAPI on Lambda through Mangum; a module imports only its layer or lower (CONTRIBUTING.md)."""
