"""The HTTP layer: thin handlers that parse requests, call the services and shape responses."""
