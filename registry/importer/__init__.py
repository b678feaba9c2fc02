"""`registry import-distribution`: a Distribution (registry:2, Debian's docker-registry) filesystem
storage folder taken into this registry's index and store, server side. Not the client's importer
(registry/client/importer.py), which loads image archives into the local image store."""
