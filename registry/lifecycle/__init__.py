"""Storage lifecycle: what the registry removes on its own (garbage, expired uploads) and when."""
