"""``sucrose check --target model=mypkg.MyNet``: every scenario's values checked against callables.

Each scenario's ``${...}`` references are resolved (always), then, for each target, the
scenario's keys under the prefix are bound to the callable and checked against its annotations
as ``ssc.partial`` does. A problem set in one domain is reported once, with the number of
scenarios that inherit it.
"""

from __future__ import annotations

import importlib
import os
import re
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any

from ..config import Config
from ..errors import ConfigError
from ..view import ConfigView
from .common import UsageError

__all__ = ["load_target", "parse_target", "scenario_problems"]

_SCENARIO = re.compile(r"scenario '[^']*', ")


def parse_target(text: str) -> tuple[str, str]:
    """``"model=mypkg.MyNet"`` -> ``("model", "mypkg.MyNet")``.

    Examples:
        >>> parse_target("model=mypkg.nets:MyNet")
        ('model', 'mypkg.nets:MyNet')
    """
    prefix, eq, target = text.partition("=")
    if not eq or not prefix or not target:
        raise UsageError(f"--target {text!r}: write PREFIX=MODULE.CALLABLE, e.g. --target model=mypkg.MyNet")
    return prefix, target


def load_target(target: str) -> Callable[..., Any]:
    """Import ``mypkg.MyNet`` (or ``mypkg:MyNet``), with the current folder on ``sys.path``.

    Raises:
        UsageError: the module cannot be imported or has no such name.

    Examples:
        >>> load_target("collections.OrderedDict").__name__
        'OrderedDict'
    """
    module, colon, name = target.partition(":")
    if not colon:
        module, _, name = target.rpartition(".")
    if not module or not name:
        raise UsageError(f"--target {target!r}: name a callable inside a module, e.g. mypkg.MyNet")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        obj: Any = importlib.import_module(module)
    except Exception as err:
        raise UsageError(
            f"--target {target!r}: cannot import {module!r}: {type(err).__name__}: {err}"
        ) from None
    for part in name.split("."):
        if not hasattr(obj, part):
            raise UsageError(f"--target {target!r}: module {module!r} has no {name!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise UsageError(f"--target {target!r}: {name!r} is not callable")
    return obj  # type: ignore[no-any-return]


def scenario_problems(cfg: Config, targets: Sequence[tuple[str, Callable[..., Any]]]) -> list[str]:
    """Reference problems of every scenario, and with ``targets`` their type problems.

    Examples:
        >>> from pathlib import Path
        >>> cfg = Config(Path("config.yaml"), {"a": {"m.dim": "3"}, "a/b": {}, "c": {"x": "${y}"}})
        >>> def net(dim: int): ...
        >>> for p in scenario_problems(cfg, [("m", net)]):
        ...     print(p.split(": ", 1)[1][:60])
        key 'm.dim' (set in domain 'a'): parameter 'dim' of net expe
        key 'x' (set in domain 'c'): the reference ${y} names no key
    """
    seen: dict[str, int] = {}
    order: list[str] = []
    for name in cfg.scenarios:
        problems: list[str] = []
        try:
            view = ConfigView(cfg, name)
        except ConfigError as err:
            problems = err.problems
        else:
            for prefix, fn in targets:
                try:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")  # unknown keys are not type problems
                        view.partial(fn, prefix)
                except ConfigError as err:
                    problems.extend(err.problems)
        for problem in problems:
            key = _SCENARIO.sub("", problem, count=1)
            if key not in seen:
                order.append(key)
            seen[key] = seen.get(key, 0) + 1
    return [p + (f" (in {seen[p]} scenarios)" if seen[p] > 1 else "") for p in order]
