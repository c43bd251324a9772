"""``dotdict``: the message type that gathers pass between tasks.

A ``dotdict`` is a real ``dict`` (``json.dumps`` and ``isinstance(d, dict)``
work on it) with attribute access and dotted paths on top. Nested dicts, and
dicts inside lists and tuples, are wrapped into ``dotdict`` when stored.
"""

from __future__ import annotations

import copy as _copy
import json
import reprlib
from collections.abc import ItemsView, KeysView, Mapping, MutableMapping, ValuesView
from typing import Any, Dict, FrozenSet, Iterable, Iterator, List, Optional, Tuple

__all__ = ["FrozenDotdictError", "dotdict"]

_MISSING = object()


class FrozenDotdictError(AttributeError, TypeError):
    """A change was attempted on a ``dotdict`` created with ``frozen=True``.

    It is both an ``AttributeError`` (as for a frozen dataclass) and a
    ``TypeError`` (as for an immutable mapping), so either ``except`` works.
    """


def _wrap(value: Any, frozen: bool, hidden: FrozenSet[Any]) -> Any:
    """Convert the dicts in ``value`` into ``dotdict``, through lists and tuples."""
    if isinstance(value, dotdict):
        if frozen and not value._dotdict__frozen:
            # A frozen message must not share a child that others can change.
            return _freeze_copy(value)
        return value
    if isinstance(value, dict):
        return dotdict(value, frozen=frozen, hidden_keys=hidden)
    value_type = type(value)
    if value_type is list:
        # NOTE: lists stay lists under frozen=True, so d.rows.append(x) still
        # works on a frozen dotdict; only the dicts inside them are frozen.
        return [_wrap(item, frozen, hidden) for item in value]
    if value_type is tuple:
        return tuple(_wrap(item, frozen, hidden) for item in value)
    return value


def _freeze_copy(source: "dotdict") -> "dotdict":
    clone = dotdict.__new__(dotdict)
    hidden = source._dotdict__hidden
    for key, value in dict.items(source):
        dict.__setitem__(clone, key, _wrap(value, True, hidden))
    clone._set_state(True, hidden)
    return clone


def _unwrap(value: Any) -> Any:
    """Convert ``dotdict`` values back into plain dicts, leaving hidden keys out."""
    if isinstance(value, dotdict):
        return {key: _unwrap(item) for key, item in value.items()}
    value_type = type(value)
    if value_type is list:
        return [_unwrap(item) for item in value]
    if value_type is tuple:
        return tuple(_unwrap(item) for item in value)
    if value_type is dict:
        return {key: _unwrap(item) for key, item in value.items()}
    return value


def _as_index(part: str) -> Optional[int]:
    """Parse a path segment as a list index, or return None if it is not one."""
    try:
        return int(part)
    except ValueError:
        return None


def _lookup(node: Any, part: str) -> Any:
    """Return the child ``part`` of ``node`` for a path read, or ``_MISSING``."""
    if isinstance(node, dict):
        # dict.get skips __missing__, so a defaultdict on the path is not changed.
        child = dict.get(node, part, _MISSING)
        if child is _MISSING:
            index = _as_index(part)
            if index is not None:
                child = dict.get(node, index, _MISSING)
        return child
    if isinstance(node, (list, tuple)):
        index = _as_index(part)
        if index is None:
            return _MISSING
        try:
            return node[index]
        except IndexError:
            return _MISSING
    if isinstance(node, Mapping):
        try:
            return node[part]
        except KeyError:
            return _MISSING
    return _MISSING


def _check_hidden_keys(hidden_keys: Any) -> FrozenSet[Any]:
    if hidden_keys is None:
        return frozenset()
    if isinstance(hidden_keys, (str, bytes)):
        raise TypeError(
            f"hidden_keys must be a list of keys, got {type(hidden_keys).__name__} "
            f"{hidden_keys!r}; wrap a single key in a list: [{hidden_keys!r}]"
        )
    try:
        return frozenset(hidden_keys)
    except TypeError:
        raise TypeError(
            "hidden_keys must be an iterable of hashable keys, got "
            f"{type(hidden_keys).__name__} {hidden_keys!r}"
        ) from None


def _pairs(other: Any, method: str) -> Iterable[Tuple[Any, Any]]:
    """Yield the (key, value) pairs of a mapping or of an iterable of pairs."""
    if isinstance(other, Mapping) or hasattr(other, "keys"):
        for key in other.keys():
            yield key, other[key]
        return
    for position, item in enumerate(other):
        try:
            key, value = item
        except (TypeError, ValueError):
            raise TypeError(
                f"{method} expects a mapping or (key, value) pairs, but item "
                f"{position} is {type(item).__name__} {item!r}"
            ) from None
        yield key, value


class dotdict(dict):  # noqa: N801 - the public name is lowercase, like dict
    """A ``dict`` with attribute access, dotted paths, freezing and hidden keys.

    ``d.user.name`` reads ``d["user"]["name"]``; ``d.get("rows.0.id")`` and
    ``d.set("meta.version", "1.0")`` walk dotted paths, where a number selects
    a list item. Keys named like methods (``items``, ``get``, ``update``)
    still work with ``d["items"]``, because attribute access finds the
    method first.

    Hidden keys are left out of iteration, ``keys()``/``values()``/
    ``items()``, ``len``, ``in``, ``to_dict``, ``to_json``, ``json.dumps``,
    ``repr`` and ``str``, but ``d.key``, ``d["key"]`` and ``d.get("key")``
    still return them. Nested dicts created by a ``dotdict`` inherit its
    hidden keys and frozen flag. Equality compares every key, hidden or not.

    Concurrent ``set()`` and ``update()`` calls from several threads on
    different paths never lose a write, also when they create the same
    missing parent levels, because each level is created with one
    ``dict.setdefault`` call, which is atomic in CPython. Writes to one path
    from two threads race, and the last one wins.

    Args:
        data: A mapping or an iterable of ``(key, value)`` pairs.
        frozen: If True, every later change raises ``FrozenDotdictError``
            (an ``AttributeError`` and a ``TypeError``), in nested levels too.
        hidden_keys: Keys to hide, as a list.
        **kwargs: More keys, as for ``dict``.

    Raises:
        TypeError: If ``hidden_keys`` is a string or holds unhashable items,
            or ``data`` is neither a mapping nor an iterable of pairs.
    """

    # Slot names are mangled (``_dotdict__frozen``) so that they cannot clash
    # with user keys read through attribute access.
    __slots__ = ("__frozen", "__hidden")

    def __new__(cls, *args: Any, **kwargs: Any) -> "dotdict":
        self = super().__new__(cls)
        # Set before __init__ so that copy and pickle, which bypass
        # __init__, always find the state.
        self._set_state(False, frozenset())
        return self

    def __init__(
        self,
        data: Any = None,
        /,
        *,
        frozen: bool = False,
        hidden_keys: Optional[Iterable[Any]] = None,
        **kwargs: Any,
    ) -> None:
        hidden = _check_hidden_keys(hidden_keys)
        frozen = bool(frozen)
        self._set_state(False, hidden)
        if data is not None:
            for key, value in _pairs(data, "dotdict()"):
                dict.__setitem__(self, key, _wrap(value, frozen, hidden))
        for key, value in kwargs.items():
            dict.__setitem__(self, key, _wrap(value, frozen, hidden))
        self._set_state(frozen, hidden)

    def _set_state(self, frozen: bool, hidden: FrozenSet[Any]) -> None:
        object.__setattr__(self, "_dotdict__frozen", frozen)
        object.__setattr__(self, "_dotdict__hidden", hidden)

    def _check_mutable(self, action: str) -> None:
        if self.__frozen:
            raise FrozenDotdictError(
                f"cannot {action}: the dotdict is frozen; build a changeable "
                "copy with dotdict(d.to_dict())"
            )

    # Attribute access

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails, so methods and slots win.
        # Dunder probes (copy, pickle, IPython) must see a plain
        # AttributeError and never a key lookup.
        if name[:2] == "__" and name[-2:] == "__":
            raise AttributeError(name)
        try:
            return dict.__getitem__(self, name)
        except KeyError:
            raise AttributeError(
                f"dotdict has no key {name!r}; use .get({name!r}, default) "
                "for a key that may be missing"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        # Every attribute is a key, so `d.items = x` stores a key and the
        # items() method stays in place.
        self[name] = value

    def __delattr__(self, name: str) -> None:
        self._check_mutable(f"delete key {name!r}")
        try:
            dict.__delitem__(self, name)
        except KeyError:
            raise AttributeError(f"dotdict has no key {name!r} to delete") from None

    def __dir__(self) -> List[str]:
        names = set(super().__dir__())
        names.update(key for key in self if isinstance(key, str) and key.isidentifier())
        return sorted(names)

    # Item access and the dict methods that change the mapping

    def __setitem__(self, key: Any, value: Any) -> None:
        self._check_mutable(f"set key {key!r}")
        dict.__setitem__(self, key, _wrap(value, False, self.__hidden))

    def __delitem__(self, key: Any) -> None:
        self._check_mutable(f"delete key {key!r}")
        dict.__delitem__(self, key)

    def setdefault(self, key: Any, default: Any = None) -> Any:
        """Return ``d[key]``, first storing ``default`` there if it is missing.

        Raises:
            FrozenDotdictError: If the dotdict is frozen.
        """
        self._check_mutable(f"set key {key!r}")
        return dict.setdefault(self, key, _wrap(default, False, self.__hidden))

    def pop(self, key: Any, *default: Any) -> Any:
        """Remove ``key`` and return its value, or ``default`` if it is missing.

        Raises:
            KeyError: If ``key`` is missing and no default is given.
            FrozenDotdictError: If the dotdict is frozen.
        """
        self._check_mutable(f"pop key {key!r}")
        return dict.pop(self, key, *default)

    def popitem(self) -> Tuple[Any, Any]:
        """Remove and return the last visible ``(key, value)`` pair.

        Raises:
            KeyError: If there is no visible key.
            FrozenDotdictError: If the dotdict is frozen.
        """
        self._check_mutable("pop an item")
        hidden = self.__hidden
        for key in reversed(dict.keys(self)):
            if key not in hidden:
                return key, dict.pop(self, key)
        raise KeyError("popitem(): dotdict has no visible keys")

    def clear(self) -> None:
        """Remove every key, hidden ones included.

        Raises:
            FrozenDotdictError: If the dotdict is frozen.
        """
        self._check_mutable("clear")
        dict.clear(self)

    def update(self, other: Any = (), /, **kwargs: Any) -> None:
        """Merge ``other`` and ``kwargs`` into this dotdict.

        Unlike ``dict.update``, a mapping value merges into a ``dotdict``
        already stored under the same key instead of replacing it, at every
        depth. Any other value (lists included) replaces the stored one. A
        key with dots, such as ``"meta.version"``, is a path as in ``set``
        unless the dotdict has that exact key.

        Args:
            other: A mapping or an iterable of ``(key, value)`` pairs.
            **kwargs: More keys to merge.

        Raises:
            FrozenDotdictError: If the dotdict is frozen.
            TypeError: If ``other`` is neither a mapping nor pairs.
        """
        self._check_mutable("update")
        for key, value in _pairs(other, "update()"):
            self._merge(key, value)
        for key, value in kwargs.items():
            self._merge(key, value)

    def _merge(self, key: Any, value: Any) -> None:
        if type(key) is str and "." in key and not dict.__contains__(self, key):
            current = self.get(key, _MISSING)
            if isinstance(current, dotdict) and isinstance(value, Mapping):
                current.update(value)
            else:
                self.set(key, value)
            return
        wrapped = _wrap(value, False, self.__hidden)
        # setdefault inserts atomically, so two threads merging into the same
        # missing key both land in one child instead of one replacing the other.
        current = dict.setdefault(self, key, wrapped)
        if current is wrapped:
            return
        if isinstance(current, dotdict) and isinstance(value, Mapping):
            current.update(value)
        else:
            dict.__setitem__(self, key, wrapped)

    def __ior__(self, other: Any) -> "dotdict":
        self.update(other)
        return self

    def __or__(self, other: Any) -> Any:
        # Like dict's |, a key of `other` replaces the stored value; only the
        # in-place |= merges, because it is update(). The result is a new,
        # unfrozen dotdict with the same hidden keys.
        if not isinstance(other, Mapping):
            return NotImplemented
        merged = type(self).__new__(type(self))
        dict.update(merged, dict.items(self))
        merged._set_state(False, self.__hidden)
        for key, value in _pairs(other, "|"):
            merged[key] = value
        return merged

    def __ror__(self, other: Any) -> Any:
        if not isinstance(other, Mapping):
            return NotImplemented
        merged = dotdict(other, hidden_keys=self.__hidden)
        for key, value in self.items():
            merged[key] = value
        return merged

    # Dotted paths

    def get(self, key: Any, default: Any = None) -> Any:
        """Return the value at ``key`` or at a dotted path, else ``default``.

        An exact key wins over a path: ``d.get("a.b")`` returns ``d["a.b"]``
        if that key exists, else ``d["a"]["b"]``. In a path, a number selects
        a list item (``"rows.0.id"``, ``"rows.-1.id"``) or an int key of a
        dict. Keys of any hashable type work as with ``dict.get``. Hidden keys
        are returned too.

        Args:
            key: A key, or a string path with ``.`` between levels.
            default: The value returned when the key or path is missing.

        Returns:
            The stored value, or ``default``.
        """
        value = dict.get(self, key, _MISSING)
        if value is not _MISSING:
            return value
        if type(key) is not str or "." not in key:
            return default
        node: Any = self
        for part in key.split("."):
            node = _lookup(node, part)
            if node is _MISSING:
                return default
        return node

    def set(self, path: Any, value: Any) -> None:
        """Store ``value`` at a dotted path, creating missing levels.

        ``d.set("meta.version", "1.0")`` creates ``d.meta`` as a ``dotdict``
        if it is missing and then stores ``version`` in it. A number selects
        an existing list item (``"rows.1.extra"``). Stored dicts are wrapped
        into ``dotdict``. Threads that set different paths at the same time
        never lose a write, even when they create the same parent levels.

        Args:
            path: A key, or a string path with ``.`` between levels.
            value: The value to store.

        Raises:
            FrozenDotdictError: If this dotdict or a level on the path is frozen.
            ValueError: If the path has an empty segment, as in ``"a..b"``.
            TypeError: If a level on the path holds a value that is neither a
                mapping nor a list, or a list is reached with a non-number.
            IndexError: If a list index on the path is out of range.
        """
        self._check_mutable(f"set {path!r}")
        if type(path) is not str or "." not in path:
            self[path] = value
            return
        parts = path.split(".")
        if "" in parts:
            raise ValueError(
                f"invalid path {path!r}: it has an empty segment; separate "
                "names with single dots, as in 'a.b.c'"
            )
        node: Any = self
        for depth in range(len(parts) - 1):
            node = self._child_for_set(node, parts, depth)
        _store(node, parts, len(parts) - 1, value, self.__hidden)

    def _child_for_set(self, node: Any, parts: List[str], depth: int) -> Any:
        part = parts[depth]
        if isinstance(node, (list, tuple)):
            child = node[_list_index(node, parts, depth)]
        elif isinstance(node, dotdict):
            node._check_mutable(f"set {'.'.join(parts)!r}")
            child = dict.get(node, part, _MISSING)
            if child is _MISSING:
                index = _as_index(part)
                if index is not None:
                    child = dict.get(node, index, _MISSING)
            if child is _MISSING:
                created = dotdict(hidden_keys=self.__hidden)
                # setdefault is one atomic step: when two threads create the
                # same level, both get the child that was stored first.
                child = dict.setdefault(node, part, created)
        else:
            child = node.setdefault(part, dotdict(hidden_keys=self.__hidden))
        if isinstance(child, (MutableMapping, list, tuple)):
            return child
        where = ".".join(parts[: depth + 1])
        # The value itself stays out of the message: it may be a hidden key's.
        raise TypeError(
            f"cannot set {'.'.join(parts)!r}: {where!r} contains a "
            f"{type(child).__name__}, not a dict, a list or a tuple; "
            f"store a dict at {where!r} first or choose another path"
        )

    # Views that leave hidden keys out

    def __iter__(self) -> Iterator[Any]:
        if not self.__hidden:
            return dict.__iter__(self)
        return self._visible_keys()

    def _visible_keys(self) -> Iterator[Any]:
        hidden = self.__hidden
        for key in dict.__iter__(self):
            if key not in hidden:
                yield key

    def __len__(self) -> int:
        if not self.__hidden:
            return dict.__len__(self)
        return sum(1 for _ in self._visible_keys())

    def __contains__(self, key: Any) -> bool:
        hidden = self.__hidden
        if hidden and key in hidden:
            return False
        return dict.__contains__(self, key)

    def keys(self) -> KeysView:
        """Return a view of the visible keys."""
        if not self.__hidden:
            return dict.keys(self)
        return KeysView(self)

    def values(self) -> ValuesView:
        """Return a view of the values of the visible keys."""
        if not self.__hidden:
            return dict.values(self)
        return _VisibleValues(self)

    def items(self) -> ItemsView:
        """Return a view of the visible ``(key, value)`` pairs."""
        if not self.__hidden:
            return dict.items(self)
        return _VisibleItems(self)

    @reprlib.recursive_repr()
    def __repr__(self) -> str:
        visible = {key: value for key, value in self.items()}
        return f"{type(self).__name__}({visible!r})"

    # Conversion

    def to_dict(self) -> Dict[Any, Any]:
        """Return a deep copy made of plain dicts and lists, without hidden keys."""
        return _unwrap(self)

    def to_json(self, **kwargs: Any) -> str:
        """Serialize the visible keys to JSON.

        The output is the same text as ``json.dumps(d.to_dict(), **kwargs)``.

        Args:
            **kwargs: Options for ``json.dumps``, such as ``indent``.

        Returns:
            The JSON document as a string.

        Raises:
            TypeError: If a value cannot be serialized to JSON.
        """
        # The stdlib encoder calls items() on dict subclasses, which leaves
        # hidden keys out, so no intermediate to_dict() copy is needed.
        return json.dumps(self, **kwargs)

    # Copy and pickle keep the type, the frozen flag and the hidden keys

    def copy(self) -> "dotdict":
        """Return a shallow copy with the same frozen flag and hidden keys."""
        return self.__copy__()

    def __copy__(self) -> "dotdict":
        clone = type(self).__new__(type(self))
        dict.update(clone, dict.items(self))
        clone._set_state(self.__frozen, self.__hidden)
        return clone

    def __deepcopy__(self, memo: Dict[int, Any]) -> "dotdict":
        clone = type(self).__new__(type(self))
        # Registered before the values are copied so that cycles end here.
        memo[id(self)] = clone
        for key, value in dict.items(self):
            dict.__setitem__(clone, _copy.deepcopy(key, memo), _copy.deepcopy(value, memo))
        clone._set_state(self.__frozen, self.__hidden)
        return clone

    def __getstate__(self) -> Dict[str, Any]:
        return {
            "items": dict(dict.items(self)),
            "frozen": self.__frozen,
            "hidden": list(self.__hidden),
        }

    def __setstate__(self, state: Dict[str, Any]) -> None:
        dict.update(self, state["items"])
        self._set_state(state["frozen"], frozenset(state["hidden"]))

    def __reduce_ex__(self, protocol: int) -> Tuple[Any, ...]:
        # The items travel in the state, which pickle restores after it has
        # recorded the new object, so a dotdict that contains itself pickles.
        return (type(self), (), self.__getstate__())


class _VisibleItems(ItemsView):
    """``items()`` of a dotdict with hidden keys, read in one pass over the dict."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Tuple[Any, Any]]:
        mapping = self._mapping
        hidden = mapping._dotdict__hidden
        for key, value in dict.items(mapping):
            if key not in hidden:
                yield key, value


class _VisibleValues(ValuesView):
    """``values()`` of a dotdict with hidden keys, read in one pass over the dict."""

    __slots__ = ()

    def __iter__(self) -> Iterator[Any]:
        mapping = self._mapping
        hidden = mapping._dotdict__hidden
        for key, value in dict.items(mapping):
            if key not in hidden:
                yield value


def _list_index(node: Any, parts: List[str], depth: int) -> int:
    index = _as_index(parts[depth])
    if index is None:
        where = ".".join(parts[:depth]) or "the root"
        raise TypeError(
            f"cannot use {'.'.join(parts)!r}: {where!r} is a list, so segment "
            f"{parts[depth]!r} must be an index such as 0"
        )
    if not -len(node) <= index < len(node):
        where = ".".join(parts[:depth])
        raise IndexError(
            f"cannot use {'.'.join(parts)!r}: index {index} is out of range for "
            f"{where!r}, which has {len(node)} items"
        )
    return index


def _store(node: Any, parts: List[str], depth: int, value: Any, hidden: FrozenSet[Any]) -> None:
    """Store ``value`` under the last path segment of ``node``."""
    part = parts[depth]
    if isinstance(node, list):
        node[_list_index(node, parts, depth)] = _wrap(value, False, hidden)
    elif isinstance(node, tuple):
        raise TypeError(
            f"cannot set {'.'.join(parts)!r}: {'.'.join(parts[:depth])!r} is a "
            "tuple, which cannot change; store a list there instead"
        )
    elif isinstance(node, dict):
        if not dict.__contains__(node, part):
            index = _as_index(part)
            if index is not None and dict.__contains__(node, index):
                node[index] = value
                return
        node[part] = value
    else:
        node[part] = value
