"""``${key}`` references between config values, resolved after a scenario's chain is merged.

A value ``${data.classes}`` (the whole value) becomes the merged value of ``data.classes`` with
its type; inside a longer string (``"runs/${model.name}"``) the value is written in as text. A
reference names a key of the merged config, so a child domain that overrides the referenced
key changes every value that refers to it. ``$${`` writes a literal ``${``. There is nothing
else: no resolvers, no expressions.

This module imports neither torch nor lightning.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Callable, Mapping
from typing import Any

from .errors import did_you_mean

__all__ = ["has_refs", "resolve_refs"]

# ``$${x}`` (group 1 set) is the escape for a literal ``${x}``
_REF = re.compile(r"\$(\$)?\{([^{}]*)\}")


def has_refs(value: Any) -> bool:
    """Whether ``value`` (a string, or a list or mapping holding strings) holds a ``${...}``.

    Examples:
        >>> has_refs("${a.b}"), has_refs(["x", {"y": "lr=${optim.lr}"}]), has_refs(3)
        (True, True, False)
    """
    kind = type(value)
    if kind is str:
        return "${" in value
    if kind is list or kind is tuple:
        return any(has_refs(v) for v in value)
    if kind is dict:
        return any(has_refs(v) for v in value.values())
    return False


def _text(value: Any) -> str:
    """A scalar written into a string as YAML would spell it."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def resolve_refs(
    values: Mapping[str, Any],
    origins: Mapping[str, str],
    where: Callable[[str, str], str],
    scenario: str = "",
) -> tuple[dict[str, Any], list[str]]:
    """Resolve every ``${key}`` of a merged config.

    Args:
        values: the merged config (key -> value).
        origins: key -> the domain that set it.
        where: ``where(domain, key)`` gives the ``file:line:column`` of a key in a domain.
        scenario: the scenario's name, for the messages.

    Returns:
        The merged config with references replaced, and one problem per missing or bad
        reference and per cycle (an empty list when all resolve).

    Examples:
        >>> vals = {"base.lr": 0.1, "optim.lr": "${base.lr}", "run": "lr=${base.lr}/$${x}"}
        >>> out, problems = resolve_refs(vals, dict.fromkeys(vals, "base"), lambda d, k: "f:1:1")
        >>> out["optim.lr"], out["run"], problems
        (0.1, 'lr=0.1/${x}', [])
        >>> _, problems = resolve_refs({"a": "${b}", "b": "${a}"}, {"a": "d", "b": "d"}, lambda d, k: "f:1:1")
        >>> print(problems[0].replace("; ", ";\\n"))
        f:1:1: key 'a' (set in domain 'd'): the references go round in a circle (a -> b -> a);
        make one of these keys a plain value
    """
    out = dict(values)
    done: dict[str, Any] = {}
    problems: list[str] = []
    failed: set[str] = set()

    def where_of(key: str) -> str:
        of = f"scenario {scenario!r}, " if scenario else ""
        return f"{where(origins[key], key)}: {of}key {key!r} (set in domain {origins[key]!r})"

    def resolve_key(key: str, path: tuple[str, ...]) -> Any:
        if key in done:
            return done[key]
        value = values[key]
        if key in failed or not has_refs(value):
            return value
        result = resolve_value(value, key, (*path, key))
        done[key] = result
        return result

    def lookup(ref: str, key: str, path: tuple[str, ...]) -> Any:
        if ref in path:
            cycle = " -> ".join((*path[path.index(ref) :], ref))
            problems.append(
                f"{where_of(path[0])}: the references go round in a circle ({cycle}); "
                "make one of these keys a plain value"
            )
            failed.update(path)
            raise _Unresolved
        if ref not in values:
            hint = did_you_mean(ref, values)
            extra = " (resolvers and expressions are not supported)" if ":" in ref or "(" in ref else ""
            problems.append(
                f"{where_of(key)}: the reference ${{{ref}}} names no key of the merged config"
                f"{extra}{hint or '.'} "
                "Set that key in a domain of the chain or correct the name ($${ writes a literal ${)."
            )
            failed.add(key)
            raise _Unresolved
        result = resolve_key(ref, path)
        if ref in failed:
            failed.add(key)
            raise _Unresolved
        return result

    def resolve_value(value: Any, key: str, path: tuple[str, ...]) -> Any:
        kind = type(value)
        if kind is list or kind is tuple:
            return kind(resolve_value(v, key, path) for v in value)
        if kind is dict:
            return {k: resolve_value(v, key, path) for k, v in value.items()}
        if kind is not str or "${" not in value:
            return value
        whole = _REF.fullmatch(value)
        if whole is not None and whole.group(1) is None:
            return copy.deepcopy(lookup(whole.group(2), key, path))

        def sub(match: re.Match[str]) -> str:
            if match.group(1) is not None:
                return match.group(0)[1:]
            found = lookup(match.group(2), key, path)
            if isinstance(found, (list, tuple, dict)):
                problems.append(
                    f"{where_of(key)}: ${{{match.group(2)}}} is a {type(found).__name__} and cannot be "
                    "written into a string; make the reference the whole value to keep it as one"
                )
                failed.add(key)
                raise _Unresolved
            return _text(found)

        return _REF.sub(sub, value)

    for key, value in values.items():
        if type(value) is str and "${" not in value:
            continue
        if key in failed or not has_refs(value):
            continue
        try:
            out[key] = resolve_key(key, ())
        except _Unresolved:
            failed.add(key)
    return out, problems


class _Unresolved(Exception):
    """A reference that could not be resolved (its problem is already recorded)."""
