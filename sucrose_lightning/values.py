"""Config values as plain data: conversion for records and loggers, equality, prefixes.

Imports neither torch nor lightning.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["count", "plain", "same_value", "under_prefix"]


def count(value: object, minimum: int, what: str) -> int:
    """``value`` when it is an int (not a bool) of at least ``minimum`` (0 or 1), else a ``SucroseError``.

    Examples:
        >>> count(3, 1, "interval")
        3
        >>> count(True, 0, "step(n)")
        Traceback (most recent call last):
        ...
        sucrose_lightning.errors.SucroseError: step(n) takes a non-negative int, not True
    """
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        from .errors import SucroseError

        kind = "non-negative" if minimum == 0 else "positive"
        raise SucroseError(f"{what} takes a {kind} int, not {value!r}")
    return value


def plain(value: Any) -> Any:
    """``value`` as plain data (dict, list, str, int, float, bool, None) for checkpoints and loggers.

    YAML can also produce dates, sets and bytes; those become ISO strings, sorted lists and
    hex strings, so ``torch.load(weights_only=True)`` and YAML/JSON writers accept the result.

    Examples:
        >>> import datetime
        >>> plain({"d": datetime.date(2024, 1, 2), "s": {2, 1}, "t": (1, 2)})
        {'d': '2024-01-02', 's': [1, 2], 't': [1, 2]}
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if isinstance(value, (set, frozenset)):
        items = [plain(v) for v in value]
        try:
            return sorted(items)
        except TypeError:
            return items
    if isinstance(value, (bytes, bytearray)):
        return bytes(value).hex()
    isoformat = getattr(value, "isoformat", None)
    if callable(isoformat):
        return isoformat()
    return str(value)


def same_value(a: Any, b: Any) -> bool:
    """Equal config values of the same type, NaN equal to NaN (``1``, ``1.0`` and ``true`` differ).

    Examples:
        >>> same_value(float("nan"), float("nan")), same_value(1, 1.0)
        (True, False)
        >>> same_value([1, {"a": 2}], [1, {"a": 2}])
        True
    """
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same_value(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same_value(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and a != a and b != b:  # NaN
        return True
    return bool(a == b)


def under_prefix(values: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    """The keys under ``prefix.`` with the prefix removed; ``""`` gives every key.

    Examples:
        >>> under_prefix({"model.dim": 3, "model_ema.decay": 0.9, "lr": 1}, "model")
        {'dim': 3}
    """
    prefix = prefix.rstrip(".")
    if not prefix:
        return dict(values)
    head = prefix + "."
    cut = len(head)
    return {k[cut:]: v for k, v in values.items() if k.startswith(head)}
