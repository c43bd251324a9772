"""``Module``, the base of agents and pipelines, and its containers.

A module is a callable object: ``module(x)`` runs ``forward(x)`` and
``await module.acall(x)`` runs ``aforward(x)``. As in PyTorch, a module that
is stored as an attribute of another module becomes its child, and
``ModuleList`` and ``ModuleDict`` hold children in a list or a dict. Every
gather function accepts modules; the async gathers call ``acall``.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Iterable, Iterator, Mapping, Optional, Set, Tuple, Union

logger = logging.getLogger(__name__)

__all__ = ["Module", "ModuleDict", "ModuleList"]


def _defines(module: "Module", method: str) -> bool:
    """Check whether the module's class overrides ``Module.<method>``."""
    return getattr(type(module), method) is not getattr(Module, method)


def _check_module(value: Any, where: str) -> "Module":
    if not isinstance(value, Module):
        raise TypeError(
            f"{where} must be an nn.Module, got {type(value).__name__} {value!r}; "
            "wrap plain functions in a Module subclass whose forward() calls them"
        )
    return value


class Module:
    """Base class of callable components: agents, tools and pipelines.

    Subclasses define ``forward`` (sync), ``aforward`` (async), or both.
    ``module(*args)`` calls ``forward``; ``await module.acall(*args)`` calls
    ``aforward``. A module that defines only one of them still works both
    ways. For a sync-only module, ``acall`` runs ``forward`` on msgflux's
    worker pool in a copy of the ``contextvars`` context, so the event loop
    never blocks. For an async-only module, a sync call
    runs ``aforward`` on msgflux's background event loop and blocks the
    calling thread until it finishes, so coroutines should use ``acall``.

    Attributes that contain a ``Module`` become children, listed by
    ``children()`` and ``modules()`` and shown in ``repr``.

    Args:
        name: A readable name for logs and ``repr``; defaults to the class name.
    """

    def __init__(self, *, name: Optional[str] = None) -> None:
        self.__dict__.setdefault("_modules", {})
        if name is not None:
            self.name = name

    # Naming

    @property
    def name(self) -> str:
        """Readable name of this module for logs; the class name unless set."""
        return self.__dict__.get("_name") or type(self).__name__

    @name.setter
    def name(self, value: str) -> None:
        if not isinstance(value, str) or not value:
            raise TypeError(
                f"name must be a non-empty string, got {type(value).__name__} {value!r}"
            )
        self.__dict__["_name"] = value

    # Calling

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the module's result. Subclasses override this.

        Raises:
            NotImplementedError: If the subclass defines neither ``forward``
                nor ``aforward``.
        """
        if _defines(self, "aforward"):
            return self._run_aforward_sync(*args, **kwargs)
        raise NotImplementedError(
            f"{type(self).__name__} defines neither forward() nor aforward(); "
            "define at least one of them to make the module callable"
        )

    async def aforward(self, *args: Any, **kwargs: Any) -> Any:
        """Compute the module's result asynchronously. Subclasses may override this.

        The default runs ``forward`` in a worker thread so that a sync module
        never blocks the event loop.

        Raises:
            NotImplementedError: If the subclass defines neither ``forward``
                nor ``aforward``.
        """
        if not _defines(self, "forward"):
            raise NotImplementedError(
                f"{type(self).__name__} defines neither forward() nor aforward(); "
                "define at least one of them to make the module callable"
            )
        from msgflux._aio import run_sync

        return await run_sync(self.forward, *args, **kwargs)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Run ``forward`` and return its result."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("calling module %s", self.name)
        return self.forward(*args, **kwargs)

    async def acall(self, *args: Any, **kwargs: Any) -> Any:
        """Run ``aforward`` and return its result."""
        if logger.isEnabledFor(logging.DEBUG):
            logger.debug("calling module %s asynchronously", self.name)
        return await self.aforward(*args, **kwargs)

    def _run_aforward_sync(self, *args: Any, **kwargs: Any) -> Any:
        # Imported here: the functional module is loaded after this one.
        from msgflux._errors import TaskError
        from msgflux.nn.functional import wait_for

        # The outcome pair keeps a TaskError that aforward returns as its
        # value apart from one that wait_for returns for a failure.
        outcome = wait_for(_aforward_outcome, self, args, kwargs)
        if isinstance(outcome, TaskError):
            raise outcome.exception
        succeeded, value = outcome
        if not succeeded:
            raise value
        return value

    # Children

    def __setattr__(self, name: str, value: Any) -> None:
        modules = self.__dict__.setdefault("_modules", {})
        if isinstance(value, Module):
            self.__dict__.pop(name, None)
            modules[name] = value
            return
        modules.pop(name, None)
        object.__setattr__(self, name, value)

    def __getattr__(self, name: str) -> Any:
        # Only called when normal lookup fails, as for children, which are
        # kept in _modules and not in the instance dict.
        modules = self.__dict__.get("_modules")
        if modules is not None and name in modules:
            return modules[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __delattr__(self, name: str) -> None:
        modules = self.__dict__.get("_modules")
        if modules is not None and name in modules:
            del modules[name]
            return
        object.__delattr__(self, name)

    def __dir__(self) -> Iterable[str]:
        return sorted(set(super().__dir__()) | set(self.__dict__.get("_modules", ())))

    def named_children(self) -> Iterator[Tuple[str, "Module"]]:
        """Yield ``(name, module)`` for each direct child, in insertion order."""
        yield from list(self.__dict__.get("_modules", {}).items())

    def children(self) -> Iterator["Module"]:
        """Yield each direct child module."""
        for _, module in self.named_children():
            yield module

    def named_modules(self, prefix: str = "") -> Iterator[Tuple[str, "Module"]]:
        """Yield ``(dotted name, module)`` for this module and every descendant.

        Each module is yielded once, even when it is a child in several
        places. This module's name is ``prefix`` (empty by default).
        """
        seen: Set[int] = set()
        yield from self._named_modules(prefix, seen)

    def _named_modules(self, prefix: str, seen: Set[int]) -> Iterator[Tuple[str, "Module"]]:
        if id(self) in seen:
            return
        seen.add(id(self))
        yield prefix, self
        for name, child in self.named_children():
            child_prefix = f"{prefix}.{name}" if prefix else name
            yield from child._named_modules(child_prefix, seen)

    def modules(self) -> Iterator["Module"]:
        """Yield this module and every descendant, each once."""
        for _, module in self.named_modules():
            yield module

    # Display

    def extra_repr(self) -> str:
        """Return extra text for ``repr``, inside the parentheses. Override to add details."""
        return ""

    def __repr__(self) -> str:
        children = list(self.named_children())
        extra = self.extra_repr()
        head = type(self).__name__
        if "_name" in self.__dict__:
            extra = f"name={self.name!r}" + (f", {extra}" if extra else "")
        if not children:
            return f"{head}({extra})"
        lines = [f"{head}("]
        if extra:
            lines.append(f"  {extra}")
        for name, child in children:
            child_text = repr(child).replace("\n", "\n  ")
            lines.append(f"  ({name}): {child_text}")
        lines.append(")")
        return "\n".join(lines)


async def _aforward_outcome(module: Module, args: tuple, kwargs: dict) -> Tuple[bool, Any]:
    try:
        return True, await module.aforward(*args, **kwargs)
    except Exception as exc:
        return False, exc


class ModuleList(Module):
    """A list of child modules, indexed like a Python list.

    Args:
        modules: The initial modules, in order.
        name: A readable name for logs and ``repr``.

    Raises:
        TypeError: If an item is not an ``nn.Module``.
    """

    def __init__(
        self, modules: Optional[Iterable[Module]] = None, *, name: Optional[str] = None
    ) -> None:
        super().__init__(name=name)
        if modules is not None:
            self.extend(modules)

    def _items(self) -> list:
        return list(self._modules.values())

    def _reset(self, items: Iterable[Module]) -> None:
        # Children are stored under "0", "1", ... so that names stay dense
        # after an insert or delete.
        self.__dict__["_modules"] = {str(index): item for index, item in enumerate(items)}

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._items())

    def __getitem__(self, index: Union[int, slice]) -> Any:
        items = self._items()
        if isinstance(index, slice):
            return type(self)(items[index])
        return items[index]

    def __setitem__(self, index: int, module: Module) -> None:
        items = self._items()
        items[index] = _check_module(module, f"ModuleList item {index}")
        self._reset(items)

    def __delitem__(self, index: Union[int, slice]) -> None:
        items = self._items()
        del items[index]
        self._reset(items)

    def __contains__(self, module: object) -> bool:
        return any(item is module for item in self._modules.values())

    def __iadd__(self, modules: Iterable[Module]) -> "ModuleList":
        self.extend(modules)
        return self

    def __add__(self, other: Iterable[Module]) -> "ModuleList":
        return type(self)([*self._items(), *other])

    def append(self, module: Module) -> "ModuleList":
        """Add ``module`` at the end and return this list.

        Raises:
            TypeError: If ``module`` is not an ``nn.Module``.
        """
        index = len(self._modules)
        self._modules[str(index)] = _check_module(module, f"ModuleList item {index}")
        return self

    def extend(self, modules: Iterable[Module]) -> "ModuleList":
        """Add each of ``modules`` at the end and return this list.

        Raises:
            TypeError: If an item is not an ``nn.Module``.
        """
        if isinstance(modules, Module) and not isinstance(modules, ModuleList):
            raise TypeError(
                f"extend() takes an iterable of modules, got the single module "
                f"{modules.name}; use append() to add one module"
            )
        for module in list(modules):
            self.append(module)
        return self

    def insert(self, index: int, module: Module) -> None:
        """Insert ``module`` before position ``index``.

        Raises:
            TypeError: If ``module`` is not an ``nn.Module``.
        """
        items = self._items()
        items.insert(index, _check_module(module, f"ModuleList item {index}"))
        self._reset(items)


class ModuleDict(Module):
    """A dict of child modules, keyed by name and kept in insertion order.

    Each child is also reachable as an attribute, as ``d.summarizer``.

    Args:
        modules: A mapping or ``(name, module)`` pairs.
        name: A readable name for logs and ``repr``.

    Raises:
        TypeError: If a key is not a string or a value is not an ``nn.Module``.
    """

    def __init__(
        self,
        modules: Optional[Union[Mapping[str, Module], Iterable[Tuple[str, Module]]]] = None,
        *,
        name: Optional[str] = None,
    ) -> None:
        super().__init__(name=name)
        if modules is not None:
            self.update(modules)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(list(self._modules))

    def __contains__(self, key: object) -> bool:
        return key in self._modules

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        if not isinstance(key, str):
            raise TypeError(
                f"ModuleDict keys must be strings, got {type(key).__name__} {key!r}"
            )
        self._modules[key] = _check_module(module, f"ModuleDict[{key!r}]")

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def keys(self) -> Iterable[str]:
        """Return the child names."""
        return self._modules.keys()

    def values(self) -> Iterable[Module]:
        """Return the child modules."""
        return self._modules.values()

    def items(self) -> Iterable[Tuple[str, Module]]:
        """Return ``(name, module)`` pairs."""
        return self._modules.items()

    def pop(self, key: str) -> Module:
        """Remove the child ``key`` and return it.

        Raises:
            KeyError: If there is no child ``key``.
        """
        return self._modules.pop(key)

    def clear(self) -> None:
        """Remove every child."""
        self._modules.clear()

    def update(
        self, modules: Union[Mapping[str, Module], Iterable[Tuple[str, Module]]]
    ) -> None:
        """Add or replace children from a mapping or ``(name, module)`` pairs.

        Raises:
            TypeError: If a key is not a string or a value is not an ``nn.Module``.
        """
        pairs: Iterable[Any] = modules.items() if isinstance(modules, Mapping) else modules
        for position, pair in enumerate(pairs):
            try:
                key, module = pair
            except (TypeError, ValueError):
                raise TypeError(
                    "ModuleDict.update() expects a mapping or (name, module) pairs, "
                    f"but item {position} is {type(pair).__name__} {pair!r}"
                ) from None
            self[key] = module

