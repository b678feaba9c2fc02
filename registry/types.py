"""Value objects shared by every layer: digests, repository names, tags and media types.

The grammars are the distribution-spec's; validating once here means a name or digest that reaches the
index or the store is already known to be safe to put in a path or a query.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Final

from registry.errors import ErrorCode, RegistryError

# Media types, named once.
OCI_MANIFEST: Final = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX: Final = "application/vnd.oci.image.index.v1+json"
DOCKER_MANIFEST: Final = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST: Final = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_SCHEMA1_SIGNED: Final = "application/vnd.docker.distribution.manifest.v1+prettyjws"
DOCKER_SCHEMA1: Final = "application/vnd.docker.distribution.manifest.v1+json"

INDEX_TYPES: Final = frozenset({OCI_INDEX, DOCKER_MANIFEST_LIST})
IMAGE_TYPES: Final = frozenset({OCI_MANIFEST, DOCKER_MANIFEST})
MANIFEST_TYPES: Final = INDEX_TYPES | IMAGE_TYPES

# https://github.com/opencontainers/distribution-spec/blob/main/spec.md#pulling-manifests
_NAME_COMPONENT = r"[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*"
NAME_RE: Final = re.compile(rf"{_NAME_COMPONENT}(?:/{_NAME_COMPONENT})*")
TAG_RE: Final = re.compile(r"[a-zA-Z0-9_][a-zA-Z0-9._-]{0,127}")
DIGEST_RE: Final = re.compile(r"([a-z0-9]+(?:[+._-][a-z0-9]+)*):([a-zA-Z0-9=_-]+)")
# RFC 6838 section 4.2, which the OCI image spec requires of mediaType and artifactType: at most 127
# characters on each side, so a media type always fits the index's 255-character columns.
_RESTRICTED_NAME = r"[A-Za-z0-9][A-Za-z0-9!#$&^_.+-]{0,126}"
MEDIA_TYPE_RE: Final = re.compile(rf"{_RESTRICTED_NAME}/{_RESTRICTED_NAME}")
# Distribution's limit; the spec lets a registry pick one and many clients assume 255.
MAX_NAME_LENGTH: Final = 255

# Supported digest algorithms and the length of their hex encoding.
DIGEST_ALGORITHMS: Final = {"sha256": 64, "sha512": 128}


@dataclass(frozen=True, slots=True)
class Digest:
    """A validated `algorithm:hex` digest of a supported algorithm."""

    algorithm: str
    hex: str

    @classmethod
    def parse(cls, text: str) -> Digest:
        match = DIGEST_RE.fullmatch(text)
        if not match:
            raise RegistryError(ErrorCode.DIGEST_INVALID, {"digest": text}, message="invalid digest format")
        algorithm, hexpart = match.groups()
        length = DIGEST_ALGORITHMS.get(algorithm)
        if length is None:
            raise RegistryError(
                ErrorCode.UNSUPPORTED, {"digest": text}, message=f"unsupported digest algorithm {algorithm}"
            )
        if len(hexpart) != length or not re.fullmatch(r"[a-f0-9]+", hexpart):
            raise RegistryError(ErrorCode.DIGEST_INVALID, {"digest": text}, message="invalid digest encoding")
        return cls(algorithm, hexpart)

    @classmethod
    def of(cls, data: bytes, algorithm: str = "sha256") -> Digest:
        return cls(algorithm, hashlib.new(algorithm, data).hexdigest())

    def hasher(self) -> hashlib._Hash:
        return hashlib.new(self.algorithm)

    def __str__(self) -> str:
        return f"{self.algorithm}:{self.hex}"


def is_digest(reference: str) -> bool:
    """A manifest reference is a digest when it has a colon: tags cannot contain one."""
    return ":" in reference


def is_valid_name(name: str) -> bool:
    return len(name) <= MAX_NAME_LENGTH and NAME_RE.fullmatch(name) is not None


def validate_name(name: str) -> str:
    if not is_valid_name(name):
        raise RegistryError(ErrorCode.NAME_INVALID, {"name": name})
    return name


def valid_tag(tag: str) -> bool:
    return TAG_RE.fullmatch(tag) is not None


def is_media_type(text: str) -> bool:
    return MEDIA_TYPE_RE.fullmatch(text) is not None
