"""The bundled client: image references, registry transport and auth, pull/push, and the local image store.

Nothing is imported here on purpose: every command imports only the modules it needs, so `registry images`
does not pay for an HTTP stack it never uses.
"""
