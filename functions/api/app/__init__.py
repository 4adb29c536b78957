"""Items API: a FastAPI app served on AWS Lambda through Mangum.

Layers, lowest first; a module imports only from its own layer or lower ones: (1) settings, observability,
blocking, items_core; (2) store/, limits; (3) auth, preconditions, sam_local; (4) dependencies;
(5) edge, routes/; (6) main, snapstart.
"""
