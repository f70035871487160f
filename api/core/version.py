"""The installed hivelog version, read from the package metadata (pyproject is the source)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version


def hivelog_version() -> str:
    """`0.1.0`, or `unknown` when run from a tree that was never installed."""
    try:
        return version("hivelog")
    except PackageNotFoundError:
        return "unknown"
