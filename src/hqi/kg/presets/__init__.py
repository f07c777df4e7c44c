"""Mappings and templates shipped with hqi, by dataset name."""

from __future__ import annotations

from pathlib import Path

__all__ = ["PRESETS", "preset"]

_HERE = Path(__file__).parent
PRESETS = ("fb15k237",)


def preset(name: str) -> tuple[Path, Path]:
    """(mapping.toml, templates.toml) of a shipped preset."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; available: {', '.join(PRESETS)}")
    return _HERE / f"{name}_mapping.toml", _HERE / f"{name}_templates.toml"
