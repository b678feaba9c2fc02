"""`registry scrub`: re-hash stored content against its digests and take what fails out of service."""

from registry.scrub.check import Finding, Scrubbed, scrub

__all__ = ["Finding", "Scrubbed", "scrub"]
