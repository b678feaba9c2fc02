"""Blob storage: content-addressed bytes and staged uploads, with nothing about repositories."""

from registry.storage.base import BeforePublish, BlobStore, BlobUnreadable, BlobWriter
from registry.storage.content import ContentStore
from registry.storage.fs import FilesystemStore

__all__ = ["BeforePublish", "BlobStore", "BlobUnreadable", "BlobWriter", "ContentStore", "FilesystemStore"]
