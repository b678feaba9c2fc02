"""Image references: `[host[:port]/]path[:tag][@digest]`, normalized the way Docker does.

A short name means Docker Hub (`busybox` is `docker.io/library/busybox:latest`); the first path component
is a registry host only when it looks like one (has a `.` or `:`, is `localhost`, or has capitals), so
`team/app` is a Hub repository but `127.0.0.1:5000/team/app` is not. The local store keys images by the
normalized string, so `busybox` and `docker.io/library/busybox:latest` name the same image.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Final

from registry.types import NAME_RE, TAG_RE, Digest

DEFAULT_DOMAIN: Final = "docker.io"
LEGACY_DEFAULT_DOMAIN: Final = "index.docker.io"
DOCKER_HUB_API_HOST: Final = "registry-1.docker.io"
OFFICIAL_PREFIX: Final = "library/"
DEFAULT_TAG: Final = "latest"

_DOMAIN_RE: Final = re.compile(
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)"
    r"(?::[0-9]+)?"
)
_IMAGE_ID_RE: Final = re.compile(r"[a-f0-9]{64}")


class InvalidReference(ValueError):
    """The text is not a valid image reference; the message says which part is wrong."""


@dataclass(frozen=True, slots=True)
class Reference:
    domain: str  # registry host[:port], e.g. "docker.io" or "127.0.0.1:5000"
    path: str  # repository path inside the registry, e.g. "library/busybox"
    tag: str | None = None
    digest: str | None = None

    @property
    def repository(self) -> str:
        """The fully qualified repository: `domain/path`."""
        return f"{self.domain}/{self.path}"

    @property
    def familiar_repository(self) -> str:
        """The repository as Docker prints it: Hub's domain and `library/` left out."""
        if self.domain != DEFAULT_DOMAIN:
            return self.repository
        return self.path.removeprefix(OFFICIAL_PREFIX)

    @property
    def api_host(self) -> str:
        """Where the /v2/ API of this reference's registry answers (Hub's API is not on docker.io)."""
        return DOCKER_HUB_API_HOST if self.domain == DEFAULT_DOMAIN else self.domain

    @property
    def manifest_reference(self) -> str:
        """What to put after /manifests/: the digest when there is one (it pins content), else the tag."""
        return self.digest or self.tag or DEFAULT_TAG

    def __str__(self) -> str:
        text = self.repository
        if self.tag:
            text += f":{self.tag}"
        if self.digest:
            text += f"@{self.digest}"
        return text


def split_domain(name: str) -> tuple[str, str]:
    """(domain, path) of a repository name, with Docker's defaults for short names."""
    first, slash, rest = name.partition("/")
    looks_like_host = "." in first or ":" in first or first == "localhost" or first.lower() != first
    if not slash or not looks_like_host:
        domain, path = DEFAULT_DOMAIN, name
    else:
        domain, path = first, rest
    if domain == LEGACY_DEFAULT_DOMAIN:
        domain = DEFAULT_DOMAIN
    if domain == DEFAULT_DOMAIN and "/" not in path:
        path = OFFICIAL_PREFIX + path
    return domain, path


def parse(text: str, default_tag: bool = True) -> Reference:
    """Parse and normalize `text`; without tag or digest the tag is `latest` unless `default_tag` is off."""
    if not text:
        raise InvalidReference("invalid reference format: empty reference")
    name, at, digest = text.partition("@")
    if at:
        try:
            Digest.parse(digest)
        except Exception as error:
            raise InvalidReference(f"invalid reference format: bad digest {digest!r}") from error
    # A tag's colon comes after the last slash; an earlier colon is a port.
    tag: str | None = None
    last_slash = name.rfind("/")
    colon = name.rfind(":")
    if colon > last_slash:
        name, tag = name[:colon], name[colon + 1 :]
        if not TAG_RE.fullmatch(tag):
            raise InvalidReference(f"invalid reference format: bad tag {tag!r} in {text!r}")
    domain, path = split_domain(name)
    if not _DOMAIN_RE.fullmatch(domain):
        raise InvalidReference(f"invalid reference format: bad registry host {domain!r} in {text!r}")
    if path.lower() != path:
        raise InvalidReference(f"invalid reference format: repository name must be lowercase: {text!r}")
    if not NAME_RE.fullmatch(path) or len(f"{domain}/{path}") > 255:
        raise InvalidReference(f"invalid reference format: bad repository name {path!r} in {text!r}")
    if _IMAGE_ID_RE.fullmatch(name):
        raise InvalidReference(f"invalid repository name ({name}): cannot be 64 hexadecimal characters")
    if tag is None and not at and default_tag:
        tag = DEFAULT_TAG
    return Reference(domain, path, tag, digest or None)


def normalize(text: str) -> str:
    """The canonical string of a reference, the key the local store uses."""
    return str(parse(text))


def familiar(text: str) -> str:
    """A stored reference as the user would type it (`busybox:latest`, `127.0.0.1:5000/x/y:1`)."""
    reference = parse(text, default_tag=False)
    shown = reference.familiar_repository
    if reference.tag:
        shown += f":{reference.tag}"
    if reference.digest:
        shown += f"@{reference.digest}"
    return shown
