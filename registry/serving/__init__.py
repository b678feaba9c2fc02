"""The HTTP engines that can serve `registry.asgi:app`: granian (the default) and hypercorn.

Each module turns the same `Settings` into its engine's configuration and runs it until SIGTERM; the
app itself stays a plain ASGI app, so both serve the same object and the limits in `registry/limits`
hold on either.
"""
