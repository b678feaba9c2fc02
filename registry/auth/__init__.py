"""Authentication and authorization: users and passwords, access rules, Docker token auth, TLS-facing
concerns (public URL, client address), login rate limits and the audit log.

Modules stay independent of the API layer: routes declare their access (`needs`) and the API's gate
hands the access check the need, so nothing here imports `registry.api`.
"""

# Where the built-in token service answers; the route table and the Bearer challenge's realm share it.
TOKEN_PATH = "/auth/token"
