"""Warnings that point at the user's line, not at Lightning's or our internals."""

from __future__ import annotations

import sys
import warnings

__all__ = ["warn_user"]

_INTERNAL = ("sucrose_lightning", "lightning", "pytorch_lightning", "lightning_fabric", "torch", "contextlib")


def _internal(module: object) -> bool:
    return isinstance(module, str) and (module.split(".", 1)[0] in _INTERNAL)


def warn_user(message: str, category: type[Warning]) -> None:
    """``warnings.warn(message, category)`` attributed to the first caller outside sucrose,
    Lightning and torch: the user's ``trainer.fit(...)`` or ``ssc.save_state_dict(...)`` line.

    Examples:
        >>> import warnings
        >>> with warnings.catch_warnings(record=True) as seen:
        ...     warnings.simplefilter("always")
        ...     warn_user("look here", UserWarning)
        >>> str(seen[0].message), seen[0].category.__name__
        ('look here', 'UserWarning')
    """
    frame = sys._getframe(1)
    level = 1
    while frame is not None and _internal(frame.f_globals.get("__name__")):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    warnings.warn(message, category, stacklevel=level + 1)
