"""``SucroseCheckpoint``'s own options checked, and what it passes on to ``ModelCheckpoint``.

It imports no lightning itself: :func:`option_names` is handed the ``ModelCheckpoint`` class.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

from .errors import SucroseError, did_you_mean
from .layout import WEIGHTS_LABEL, check_label

__all__ = ["FIXED_OPTIONS", "checkpoint_options", "option_names"]

#: ``ModelCheckpoint`` options the scenario decides (its folder, its names, no ``-v1``).
FIXED_OPTIONS = ("dirpath", "filename", "enable_version_counter")


def option_names(model_checkpoint: type) -> list[str]:
    """The ``ModelCheckpoint`` parameters a user may set (those of the installed Lightning).

    Examples:
        >>> class Stock:
        ...     def __init__(self, dirpath=None, monitor=None, save_top_k=1): ...
        >>> option_names(Stock)
        ['monitor', 'save_top_k']
    """
    params = inspect.signature(model_checkpoint).parameters
    return [n for n in params if n not in (*FIXED_OPTIONS, "self")]


def checkpoint_options(
    scenario: str, tag: str | None, keep_last: int | None, given: Mapping[str, Any], fixed: Mapping[str, Any]
) -> tuple[dict[str, Any], str | None]:
    """Check the callback's options; return those for ``ModelCheckpoint`` and the tag to use.

    Args:
        scenario: the scenario's name, for the messages.
        tag: the ``tag=`` given.
        keep_last: the ``keep_last=`` given.
        given: ``ModelCheckpoint``'s options as given (``save_top_k=None``: not given).
        fixed: any other keyword argument (refused).

    Raises:
        SucroseError: a fixed or unknown option, a bad ``tag``, or ``keep_last`` combined with
            ``monitor`` or ``save_top_k``.

    Examples:
        >>> checkpoint_options("base", None, None, {"monitor": "val_loss", "save_top_k": None}, {})
        ({'monitor': 'val_loss'}, 'best')
        >>> checkpoint_options("base", None, 3, {"monitor": None, "save_top_k": None}, {})
        ({'monitor': None, 'save_top_k': -1}, None)
    """
    if fixed:
        named = [k for k in FIXED_OPTIONS if k in fixed]
        if named:
            raise SucroseError(
                f"the checkpoint callback of scenario {scenario!r} names its files itself; drop "
                + ", ".join(f"{k}=" for k in named)
            )
        raise SucroseError(
            f"SucroseCheckpoint got unknown option(s) {', '.join(map(repr, fixed))}"
            f"{did_you_mean(next(iter(fixed)), [*given, 'tag', 'keep_last', 'strict_config', 'warn_unused'])}"
        )
    options = {k: v for k, v in given.items() if not (k == "save_top_k" and v is None)}
    if keep_last is not None:
        if isinstance(keep_last, bool) or not isinstance(keep_last, int) or keep_last < 1:
            raise SucroseError(f"keep_last must be a positive int, not {keep_last!r}")
        if options.get("monitor") is not None or "save_top_k" in options:
            raise SucroseError(
                "keep_last=K keeps the newest K checkpoints; it cannot be combined with monitor= "
                "or save_top_k= (use save_top_k with monitor for the best K)"
            )
    monitored = options.get("monitor") is not None
    if tag is None and monitored:
        tag = "best"
    if tag is not None and (check_label(tag) or tag.endswith(("-latest", "-" + WEIGHTS_LABEL))):
        raise SucroseError(
            f"tag= of scenario {scenario!r}'s checkpoint callback: "
            + (check_label(tag) or f"{tag!r} ends with a reserved suffix ('-latest', '-weights')")
        )
    if not monitored:
        options.setdefault("save_top_k", -1)
    return options, tag
