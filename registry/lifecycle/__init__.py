"""Storage lifecycle: what may be kept (retention, quotas, immutable tags) and what goes."""
