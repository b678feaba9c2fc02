"""Blob storage: content-addressed bytes and staged uploads, with nothing about repositories."""

from registry.storage.base import BlobStore, BlobWriter
from registry.storage.fs import FilesystemStore

__all__ = ["BlobStore", "BlobWriter", "FilesystemStore"]
