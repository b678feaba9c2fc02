# The registry as a container image: `docker build -t registry .`
# Data (index and blobs) lives in /var/lib/registry; mount a volume there.
FROM python:3.11-slim

RUN useradd --system --home-dir /var/lib/registry --create-home registry
WORKDIR /src
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY migrations ./migrations
RUN pip install --no-cache-dir . && rm -rf /src

USER registry
ENV REGISTRY_DATA_DIR=/var/lib/registry \
    REGISTRY_LISTEN=0.0.0.0:5000
VOLUME /var/lib/registry
EXPOSE 5000
# Listening beyond loopback needs authentication (REGISTRY_AUTH=basic|token) or an explicit
# REGISTRY_ALLOW_ANONYMOUS_REMOTE=true; the server refuses to start otherwise.
# /readyz: the index and the blob store answer (plain HTTP on REGISTRY_LISTEN's port; set
# REGISTRY_METRICS_LISTEN and point this at it when serving TLS).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 \
    CMD python -c "import os, urllib.request; port = os.environ['REGISTRY_LISTEN'].rpartition(':')[2]; \
urllib.request.urlopen(f'http://127.0.0.1:{port}/readyz', timeout=4)"
ENTRYPOINT ["registry", "serve"]
