"""Griffe extensions for the API reference (named in ``mkdocs.yml``).

* ``KeepShadowedFunctions``: the package has both a function ``scenario()`` (the public entry
  point, in ``__init__.py``) and a module ``scenario.py``, and griffe lets the module shadow the
  function. The function stays reachable as ``sucrose_lightning.scenario_function`` (rendered under
  its own name), so ``docs/api.md`` shows it with ``::: sucrose_lightning.scenario_function``.
* ``SphinxRoles``: the docstrings use Sphinx roles (``:class:`SucroseScenario```,
  ``:meth:`~CheckpointStore.writer```), which Markdown would show raw (and which break the
  parsing of a ``Returns:`` line, whose first colon splits type from text). Each becomes a code
  span of the name as Sphinx would show it, and each target is resolved from where it is written:
  one that names nothing (a renamed or removed function) is a warning, so
  ``mkdocs build --strict`` fails on it.
"""

from __future__ import annotations

import builtins
import importlib
import logging
import re
from typing import Any

import griffe

PACKAGE = "sucrose_lightning"
ROLE = re.compile(r":(?:class|func|meth|attr|data|exc|mod|obj):`(?P<tilde>~?)(?P<target>[\w.]+)`")
log = logging.getLogger("mkdocs.plugins.sucrose_docs")  # under "mkdocs": --strict counts its warnings


class KeepShadowedFunctions(griffe.Extension):
    def __init__(self) -> None:
        super().__init__()
        self.functions: list[griffe.Function] = []

    def on_function_instance(self, *, func: griffe.Function, **kwargs: Any) -> None:
        if func.path == f"{PACKAGE}.scenario" and func.parent is not None and func.parent.is_package:
            self.functions.append(func)

    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        for func in self.functions:
            if func.parent is pkg:
                pkg.members[f"{func.name}_function"] = func


def _exists(pkg: griffe.Module, path: str) -> bool:
    try:
        pkg.modules_collection[path]
        return True
    except KeyError:
        pass
    if path.partition(".")[0] == PACKAGE:
        return False
    if "." not in path and hasattr(builtins, path):
        return True
    try:  # the standard library or a dependency: import the longest module prefix
        parts = path.split(".")
        for i in range(len(parts), 0, -1):
            try:
                obj: Any = importlib.import_module(".".join(parts[:i]))
            except ImportError:
                continue
            for attr in parts[i:]:
                obj = getattr(obj, attr)
            return True
    except AttributeError:
        return False
    return False


def _resolve(obj: griffe.Object, target: str) -> str | None:
    """The full path ``target`` names when written in ``obj``'s docstring, or None."""
    pkg = obj.package
    if target.startswith("."):  # relative to the module's package
        module = obj.module
        base = module.path if module.is_init_module or module.parent is None else module.parent.path
        path = base + target
        return path if _exists(pkg, path) else None
    if _exists(pkg, target):
        return target
    first, _, rest = target.partition(".")
    scope: griffe.Object | None = obj
    while scope is not None:
        try:
            base = scope.resolve(first)
        except griffe.NameResolutionError:
            base = None
        if base is None and first in scope.members:
            base = scope.members[first].path
        if base is not None:
            path = f"{base}.{rest}" if rest else base
            return path if _exists(pkg, path) else None
        scope = scope.parent
    return None


class SphinxRoles(griffe.Extension):
    def on_package(self, *, pkg: griffe.Module, **kwargs: Any) -> None:
        if pkg.name == PACKAGE:
            self._walk(pkg, set())

    def _walk(self, obj: griffe.Object, seen: set[int]) -> None:
        if id(obj) in seen:
            return
        seen.add(id(obj))
        if obj.docstring is not None:
            obj.docstring.value = ROLE.sub(lambda m: self._replace(obj, m), obj.docstring.value)
        for member in obj.members.values():
            if not member.is_alias:
                self._walk(member, seen)  # type: ignore[arg-type]

    def _replace(self, obj: griffe.Object, m: re.Match[str]) -> str:
        target = m["target"]
        if _resolve(obj, target) is None:
            where = f"{obj.filepath}:{obj.docstring.lineno if obj.docstring else '?'}"
            log.warning("%s: docstring of %s refers to %s, which names nothing", where, obj.path, m[0])
        shown = target.rsplit(".", 1)[-1] if m["tilde"] else target.lstrip(".")
        return f"`{shown}`"
