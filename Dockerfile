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
ENTRYPOINT ["registry", "serve"]
