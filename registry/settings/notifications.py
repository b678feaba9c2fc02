"""The settings of webhooks (Distribution's `notifications`) and of the background store check (its
`health`), keyed as Distribution keys them, so its `config.yml` sections read unchanged."""

from __future__ import annotations

import dataclasses
import re

from registry.settings.values import Duration, section, setting

ONE_SECOND = Duration(1.0)


@dataclasses.dataclass(frozen=True, slots=True)
class EndpointIgnore:
    """Events an endpoint is not sent: those of these target media types, or of these actions."""

    mediatypes: tuple[str, ...] = ()
    actions: tuple[str, ...] = ()


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationEndpoint:
    """One webhook receiver, keyed as Distribution's `notifications.endpoints[]`.

    `headers` maps a name to its values, as Distribution's does. `threshold` failures in a row mark the
    endpoint failing (a metric and a log line); each retry waits twice as long as the last, from
    `backoff` up to MAX_BACKOFF. `backlog` (ours) bounds the events waiting for it: beyond it new events
    are kept as failed, for `registry events retry`, instead of growing the queue without end.
    """

    name: str
    url: str
    headers: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    timeout: Duration = ONE_SECOND
    threshold: int = 10
    backoff: Duration = ONE_SECOND
    ignoredmediatypes: tuple[str, ...] = ()
    ignore: EndpointIgnore = EndpointIgnore()
    disabled: bool = False
    backlog: int = 10000

    def __post_init__(self) -> None:
        where = f"notifications endpoint {self.name!r}"
        if not self.name.strip():
            raise ValueError("setting 'notifications.endpoints': every endpoint needs a name")
        if not re.match(r"https?://", self.url):
            raise ValueError(f"{where}: url must be an http:// or https:// URL, not {self.url!r}")
        if self.timeout <= 0 or self.backoff <= 0 or self.threshold < 1 or self.backlog < 1:
            raise ValueError(f"{where}: timeout, backoff, threshold and backlog must be above 0")


@dataclasses.dataclass(frozen=True, slots=True)
class NotificationSettings:
    endpoints: tuple[NotificationEndpoint, ...] = ()

    def __post_init__(self) -> None:
        names = [endpoint.name for endpoint in self.endpoints]
        twice = next((name for name in names if names.count(name) > 1), None)
        if twice is not None:
            raise ValueError(f"setting 'notifications.endpoints': two endpoints are named {twice!r}")


@dataclasses.dataclass(frozen=True, slots=True)
class StorageDriverCheck:
    """Distribution's `health.storagedriver`: ask the store every `interval`; after `threshold` failures
    in a row /readyz answers 503 until a check passes. Off, /readyz asks the store on each call."""

    enabled: bool = setting(False, "Check the store in the background (else /readyz asks it each time).")
    interval: float = setting(10.0, "Seconds between checks.", positive=True, duration=True)
    threshold: int = setting(3, "Failures in a row before /readyz answers 503.", positive=True)


@dataclasses.dataclass(frozen=True, slots=True)
class HealthSettings:
    storagedriver: StorageDriverCheck = section(StorageDriverCheck, "The store check.")
