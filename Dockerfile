# The registry as a container image, run as Distribution's `registry:2` is:
#   docker run -d -p 5000:5000 --restart=always -v /opt/data/registry:/var/lib/registry registry
# Build it with `deploy/image/build [TAG]` (no outside container registry needed: it makes the base from
# Debian packages), or `docker build -t registry .` where Docker Hub is reachable.

# A Debian bookworm root with python3 (3.11) and python3-venv; deploy/image/build passes its own.
ARG BASE=debian:bookworm-slim

# ---- build: a virtual environment with the registry and its dependencies from PyPI.
FROM ${BASE} AS build
# Locally added CA certificates (PEM) for reaching PyPI through an intercepting proxy: trusted in this
# stage only, never in the image.
ARG PIP_EXTRA_CA=""
RUN set -eu; \
    if ! command -v python3 >/dev/null || ! python3 -c 'import ensurepip' 2>/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 python3-venv ca-certificates; \
    fi; \
    if [ -n "$PIP_EXTRA_CA" ]; then \
        printf '%s\n' "$PIP_EXTRA_CA" > /usr/local/share/ca-certificates/build-extra.crt; \
        cat /etc/ssl/certs/ca-certificates.crt /usr/local/share/ca-certificates/build-extra.crt > /build-ca.pem; \
    else cp /etc/ssl/certs/ca-certificates.crt /build-ca.pem; fi; \
    python3 -m venv /opt/registry
WORKDIR /src
# Only what the package is made of (.dockerignore keeps the rest out of the context).
COPY pyproject.toml README.md ./
COPY registry ./registry
COPY migrations ./migrations
RUN PIP_CERT=/build-ca.pem /opt/registry/bin/pip install --no-cache-dir --disable-pip-version-check . \
    && /opt/registry/bin/pip uninstall -y -q pip

# ---- the image: the same base, the virtual environment, an entrypoint.
FROM ${BASE}
RUN set -eu; \
    if ! command -v python3 >/dev/null; then \
        apt-get update && apt-get install -y --no-install-recommends python3 ca-certificates \
        && rm -rf /var/lib/apt/lists/*; \
    fi; \
    useradd --system --user-group --uid 999 --home-dir /var/lib/registry --no-create-home \
        --shell /usr/sbin/nologin registry; \
    install -d -o registry -g registry -m 0750 /var/lib/registry
COPY --from=build /opt/registry /opt/registry
COPY deploy/image/entrypoint deploy/image/healthcheck /usr/local/bin/

# Like registry:2: every interface, port 5000, no authentication, and says so (a warning at each start).
# Turn authentication on with REGISTRY_AUTH_MODE=basic|token (README "Container image").
ENV PATH=/opt/registry/bin:$PATH \
    REGISTRY_DATA_DIR=/var/lib/registry \
    REGISTRY_HTTP_ADDR=0.0.0.0:5000 \
    REGISTRY_AUTH_ALLOW_ANONYMOUS_REMOTE=true
VOLUME /var/lib/registry
EXPOSE 5000
# /readyz: the index and the blob store answer (see deploy/image/healthcheck for which address).
HEALTHCHECK --interval=30s --timeout=5s --start-period=20s --retries=3 CMD ["healthcheck"]
# Starts as root only to give a root-owned bind mount to the `registry` user, then runs the server as
# that user, as PID 1 (SIGTERM from `docker stop` goes straight to it). See deploy/image/entrypoint.
ENTRYPOINT ["entrypoint"]
CMD ["registry", "serve"]
