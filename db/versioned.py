"""Versioned rules (fix-link rule, failure signature rule): a built-in version or one defined in interop.toml."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from db.errors import InteropError

R = TypeVar("R")


def pick_version(
    version: str,
    configured: Mapping[str, Any] | None,
    builtin: Mapping[str, Mapping[str, Any]],
    build: Callable[[str, Mapping[str, Any]], R],
    error: type[InteropError],
    what: str,
) -> R:
    """The rule `version`: interop.toml's definition wins over a built-in one; an unknown version names the known."""
    configured = configured or {}
    if version in configured:
        return build(version, configured[version])
    if version in builtin:
        return build(version, builtin[version])
    choices = sorted(set(builtin) | set(configured))
    raise error(f"unknown {what} version {version!r} (known: {', '.join(choices)})")
