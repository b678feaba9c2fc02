"""Authentication and authorization: users and passwords, access rules, Docker token auth, TLS-facing
concerns (public URL, client address), login rate limits and the audit log.

Modules stay independent of the API layer's route table (the middleware is handed it), so the route
table can import the token service without a cycle.
"""

# Where the built-in token service answers; the route table and the Bearer challenge's realm share it.
TOKEN_PATH = "/auth/token"
