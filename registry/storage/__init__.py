"""Blob storage: content-addressed bytes and staged uploads, with nothing about repositories."""

from registry.storage.base import BlobStore, BlobUnreadable, BlobWriter
from registry.storage.fs import FilesystemStore

__all__ = ["BlobStore", "BlobUnreadable", "BlobWriter", "FilesystemStore"]
