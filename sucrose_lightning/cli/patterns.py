"""Scenario patterns for ``sucrose run``, ``ls``, ``plot`` and ``scalars``: ``base/lr/*``.

``*`` matches any text within one level (never a ``/``), ``**`` any text across levels,
``?`` one character, ``[...]`` one of a set. A name without these characters matches only
itself. Patterns are matched against the scenarios of the config (grid children included),
in the config's order.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from ..config import Config
from ..errors import did_you_mean
from .common import UsageError, require_scenario
from .render import rel

__all__ = ["is_pattern", "match_scenarios", "pattern_regex"]

_WILD = re.compile(r"[*?\[]")


def is_pattern(text: str) -> bool:
    """Whether ``text`` holds a wildcard.

    Examples:
        >>> is_pattern("base/lr/*"), is_pattern("base/lr")
        (True, False)
    """
    return bool(_WILD.search(text))


def pattern_regex(pattern: str) -> re.Pattern[str]:
    """The regular expression a pattern stands for.

    Examples:
        >>> one = pattern_regex("base/*")
        >>> bool(one.fullmatch("base/a")), bool(one.fullmatch("base/a/b"))
        (True, False)
        >>> bool(pattern_regex("base/**").fullmatch("base/a/b"))
        True
    """
    out, i = [], 0
    while i < len(pattern):
        c = pattern[i]
        if pattern.startswith("**", i):
            out.append(".*")
            i += 2
            continue
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "[":
            end = pattern.find("]", i + 2)
            if end < 0:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1 : end]
                neg = body.startswith("!")
                out.append("[" + ("^" if neg else "") + re.escape(body[1:] if neg else body) + "]")
                i = end + 1
                continue
        else:
            out.append(re.escape(c))
        i += 1
    return re.compile("".join(out))


def match_scenarios(cfg: Config, patterns: Sequence[str]) -> list[str]:
    """Every scenario matching one of ``patterns``, in config order, each once.

    Raises:
        UsageError: a pattern matches no scenario (a plain name: the closest names).

    Examples:
        >>> from pathlib import Path
        >>> cfg = Config(Path("config.yaml"), {"base": {}, "base/lr/a": {}, "base/lr/b": {}, "other": {}})
        >>> match_scenarios(cfg, ["base/lr/*", "other"])
        ['base/lr/a', 'base/lr/b', 'other']
    """
    chosen: set[str] = set()
    for pattern in patterns:
        if not is_pattern(pattern):
            require_scenario(cfg, pattern)
            chosen.add(pattern)
            continue
        regex = pattern_regex(pattern)
        found = [n for n in cfg.scenarios if regex.fullmatch(n)]
        if not found:
            head = pattern[: _WILD.search(pattern).start()].rsplit("/", 1)[0]  # type: ignore[union-attr]
            near = [n for n in cfg.scenarios if head and n.startswith(head)]
            hint = did_you_mean(head, cfg.scenarios) if not near else f" (scenarios under {head!r}: "
            if near:
                hint += ", ".join(near[:5]) + (", ..." if len(near) > 5 else "") + ")"
            raise UsageError(
                f"pattern {pattern!r} matches no scenario of {rel(cfg.path)}{hint}; "
                "'*' stays within one level, '**' crosses levels ('sucrose ls' lists them all)"
            )
        chosen.update(found)
    return [n for n in cfg.scenarios if n in chosen]
