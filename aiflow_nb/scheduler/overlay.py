"""Copy-on-write views of the scheduler's memory, for the decision core to read and change while deciding.

The core decides one input over a :class:`~.memory.State` it must not change:
it reads through these views, and what it sets or removes lands in the
view's own layer, which becomes part of its :class:`~.decisions.Decisions`.
The state underneath is never written; only what was touched is copied.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, Generic, TypeVar

K = TypeVar("K")
V = TypeVar("V")

#: A key removed in the layer (it is still in the state underneath).
GONE: Any = object()
_MISS: Any = object()


class Overlay(Generic[K, V]):
    """A dict read through ``upper`` (set or removed while deciding) onto ``base`` (never written)."""

    __slots__ = ("base", "upper")

    def __init__(self, base: dict[K, V]) -> None:
        self.base = base
        self.upper: dict[K, Any] = {}

    def _find(self, key: object) -> Any:
        found = self.upper.get(key, _MISS)  # type: ignore[arg-type]
        if found is _MISS:
            return self.base.get(key, _MISS)  # type: ignore[arg-type]
        return _MISS if found is GONE else found

    def get(self, key: K, default: V | None = None) -> V | None:
        upper = self.upper
        if upper:
            found = upper.get(key, _MISS)
            if found is not _MISS:
                return default if found is GONE else found  # type: ignore[no-any-return]
        return self.base.get(key, default)

    def __getitem__(self, key: K) -> V:
        found = self._find(key)
        if found is _MISS:
            raise KeyError(key)
        return found  # type: ignore[no-any-return]

    def __contains__(self, key: object) -> bool:
        upper = self.upper
        if upper:
            found = upper.get(key, _MISS)  # type: ignore[arg-type]
            if found is not _MISS:
                return found is not GONE
        return key in self.base

    def __setitem__(self, key: K, value: V) -> None:
        self.upper[key] = value

    def pop(self, key: K, default: V | None = None) -> V | None:
        found = self._find(key)
        if found is _MISS:
            return default
        if key in self.base:
            self.upper[key] = GONE
        else:
            del self.upper[key]
        return found  # type: ignore[no-any-return]

    def setdefault(self, key: K, default: V) -> V:
        found = self._find(key)
        if found is _MISS:
            self.upper[key] = found = default
        return found  # type: ignore[no-any-return]

    def items(self) -> Iterable[tuple[K, V]]:
        """Every pair, in the state's order, then the keys the layer added."""
        upper = self.upper
        if not upper:
            return self.base.items()
        merged = [(k, upper.get(k, v)) for k, v in self.base.items()]
        merged.extend((k, v) for k, v in upper.items() if k not in self.base)
        return [(k, v) for k, v in merged if v is not GONE]

    def values(self) -> Iterable[V]:
        if not self.upper:
            return self.base.values()
        return [v for _, v in self.items()]

    def __iter__(self) -> Iterator[K]:
        return iter([k for k, _ in self.items()])

    def __len__(self) -> int:
        return len(list(self.items())) if self.upper else len(self.base)

    def changed(self) -> dict[K, V | None]:
        """What the layer set (None for a removed key)."""
        return {k: (None if v is GONE else v) for k, v in self.upper.items()}


class VersionIndex:
    """Which running executions pin each workflow version, over the state's index, sets not copied."""

    __slots__ = ("added", "base", "removed")

    def __init__(self, base: dict[Any, set[int]]) -> None:
        self.base = base
        self.added: dict[Any, set[int]] = {}
        self.removed: dict[Any, set[int]] = {}

    def get(self, key: Any, default: Iterable[int] = ()) -> Iterable[int]:
        ids = self.base.get(key)
        added, removed = self.added.get(key), self.removed.get(key)
        if added is None and removed is None:
            return default if ids is None else ids
        merged = set(ids or ())
        merged -= removed or set()
        merged |= added or set()
        return merged

    def add(self, key: Any, execution_id: int) -> None:
        removed = self.removed.get(key)
        if removed:
            removed.discard(execution_id)
        added = self.added.get(key)
        if added is None:
            self.added[key] = {execution_id}
        else:
            added.add(execution_id)

    def discard(self, key: Any, execution_id: int) -> None:
        added = self.added.get(key)
        if added:
            added.discard(execution_id)
        if execution_id in self.base.get(key, ()):
            self.removed.setdefault(key, set()).add(execution_id)

    def count(self, namespace: str, name: str) -> int:
        """How many executions of the workflow run (any version)."""
        keys = {k for k in (*self.base, *self.added) if (k[0], k[1]) == (namespace, name)}
        return sum(len(list(self.get(k))) for k in keys)
