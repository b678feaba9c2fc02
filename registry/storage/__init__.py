"""Blob storage: content-addressed bytes and staged uploads, with nothing about repositories."""

from registry.storage.base import BlobStore, BlobUnreadable, BlobWriter
from registry.storage.content import ContentStore
from registry.storage.fs import FilesystemStore

__all__ = ["BlobStore", "BlobUnreadable", "BlobWriter", "ContentStore", "FilesystemStore"]
