"""Watching the registry run: the request context, access log, request ids, metrics and health checks.

Modules here are imported by what needs them (the ASGI layer, the route table, `registry serve`); this
package imports none of them itself, so `prometheus_client` loads only where metrics are on.
"""
