"""Persistence: the versioned, crash-safe index directory format (format.py)."""

from hqi.storage.format import FORMAT_VERSION, load, read_manifest, save

__all__ = ["FORMAT_VERSION", "load", "read_manifest", "save"]
