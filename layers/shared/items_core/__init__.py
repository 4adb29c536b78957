"""What every function shares (item model, row layout, realtime messages); imports no function's own code."""
