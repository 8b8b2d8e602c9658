"""ff: durable execution on Valkey."""
