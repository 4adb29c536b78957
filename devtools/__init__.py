"""Developer tooling: the local server, its embedded DynamoDB and dev tokens (never deployed)."""
