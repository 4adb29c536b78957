"""The deployed realtime path: the WebSocket API's handler and the stream notifier."""
