"""DynamoDB access: items, idempotency records and pagination cursors.

May import only `items_core` and botocore: the store knows nothing of HTTP,
settings or FastAPI; it is handed its client and table name.
"""
