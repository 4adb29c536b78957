"""Rows of items and idempotency records, and listing cursors; imports items_core, botocore, observability."""
