"""Files fetched over HTTP(S) for a build: a context tarball, or an `ADD https://...` source.

The body goes to a temporary file (any size, never whole in memory), removed when the caller is done.
The file's name and time come from the response as Docker takes them: the last path component of the
final URL, and `Last-Modified` when the server sends one.
"""

from __future__ import annotations

import contextlib
import email.utils
import posixpath
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO
from urllib.parse import urlsplit

from registry.build.errors import BuildError


@dataclass(frozen=True)
class Downloaded:
    stream: BinaryIO  # at its start
    path: Path
    name: str  # the URL's last path component (may be empty)
    mtime: int | None  # from Last-Modified


@contextlib.contextmanager
def download(url: str) -> Iterator[Downloaded]:
    import httpx  # only builds that fetch pay for loading it

    with tempfile.NamedTemporaryFile(prefix="registry-build-fetch-") as spool:
        try:
            with httpx.stream("GET", url, follow_redirects=True, timeout=60) as response:
                if response.status_code != 200:
                    raise BuildError(f"failed to fetch {url}: HTTP {response.status_code}")
                for chunk in response.iter_bytes(1 << 20):
                    spool.write(chunk)
                final = str(response.url)
                modified = response.headers.get("last-modified")
        except httpx.HTTPError as error:
            raise BuildError(f"failed to fetch {url}: {error}") from None
        spool.flush()
        spool.seek(0)
        mtime = None
        if modified:
            with contextlib.suppress(TypeError, ValueError):
                mtime = int(email.utils.parsedate_to_datetime(modified).timestamp())
        name = posixpath.basename(urlsplit(final).path)
        yield Downloaded(spool, Path(spool.name), name, mtime)  # type: ignore[arg-type]
