"""A tiny by-name plug-in registry: sources, converters and runtimes register themselves here."""

from __future__ import annotations

from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Registry(Generic[T]):
    """Name -> factory; `get` builds the plug-in lazily so heavy imports happen only when it is used."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._factories: dict[str, Callable[[], T]] = {}
        self._cache: dict[str, T] = {}

    def register(self, name: str, factory: Callable[[], T], *, replace: bool = False) -> None:
        if name in self._factories and not replace:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._factories[name] = factory
        self._cache.pop(name, None)

    def get(self, name: str) -> T:
        if name not in self._factories:
            known = ", ".join(sorted(self._factories)) or "none"
            raise KeyError(f"unknown {self.kind} {name!r} (known: {known})")
        if name not in self._cache:
            self._cache[name] = self._factories[name]()
        return self._cache[name]

    def names(self) -> list[str]:
        return sorted(self._factories)

    def __contains__(self, name: object) -> bool:
        return name in self._factories
