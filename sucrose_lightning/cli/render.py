"""Text for the ``sucrose`` command: tables, JSON, sizes, times, paths and inline values.

Every function here is pure: it returns a string and prints nothing. :class:`Output` collects
what a command writes to stdout and stderr, in order, with its exit code; ``main`` prints it.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

__all__ = [
    "Output",
    "human_size",
    "inline",
    "iso_time",
    "local_time",
    "rel",
    "table",
    "to_json",
]


@dataclass
class Output:
    """What a command prints: chunks for stdout or stderr in the order they are written.

    Examples:
        >>> out = Output()
        >>> out.out("a table")
        >>> out.err("sucrose: a warning")
        >>> out.code = 1
        >>> out.stdout(), out.stderr(), out.code
        ('a table\\n', 'sucrose: a warning\\n', 1)
    """

    chunks: list[tuple[bool, str]] = field(default_factory=list)  # (to stderr, text)
    code: int = 0

    def out(self, text: str = "", end: str = "\n") -> None:
        """Add ``text`` (then ``end``) to stdout, like ``print``."""
        self.chunks.append((False, text + end))

    def err(self, text: str) -> None:
        """Add one line to stderr."""
        self.chunks.append((True, text + "\n"))

    def stdout(self) -> str:
        """Everything for stdout."""
        return "".join(text for to_err, text in self.chunks if not to_err)

    def stderr(self) -> str:
        """Everything for stderr."""
        return "".join(text for to_err, text in self.chunks if to_err)

    def emit(self, stdout: TextIO | None = None, stderr: TextIO | None = None) -> int:
        """Write the chunks in order (default: ``sys.stdout``, ``sys.stderr``); returns :attr:`code`."""
        streams = (stdout or sys.stdout, stderr or sys.stderr)
        for to_err, text in self.chunks:
            streams[to_err].write(text)
        return self.code


def human_size(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``.

    Examples:
        >>> human_size(1536)
        '1.5 KiB'
        >>> human_size(12)
        '12 B'
    """
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def rel(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the current folder when it lies inside it (shorter messages), else as is.

    Examples:
        >>> rel(os.path.join(os.getcwd(), "ckpts", "base"))
        'ckpts/base'
        >>> rel("/")
        '/'
    """
    text = os.fspath(path)
    with contextlib.suppress(ValueError):
        relative = os.path.relpath(text)
        if not relative.startswith(".."):
            return relative
    return text


def local_time(ts: float | None) -> str:
    """A timestamp as local ``YYYY-MM-DD HH:MM``, or ``-`` for none.

    Examples:
        >>> local_time(None)
        '-'
        >>> len(local_time(0.0))
        16
    """
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def iso_time(ts: float | None) -> str | None:
    """A timestamp as local ISO 8601 with the UTC offset (for JSON), or ``None``.

    Examples:
        >>> iso_time(None) is None, iso_time(0.0)[4]
        (True, '-')
    """
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts))


def inline(value: Any) -> str:
    """A value as one line of YAML flow syntax (strings that look like numbers stay quoted).

    Examples:
        >>> inline(0.001), inline(True), inline(None), inline(float("inf"))
        ('0.001', 'true', 'null', '.inf')
        >>> inline("1.5"), inline([1, "a: b"]), inline({"k": 2})
        ("'1.5'", "[1, 'a: b']", '{k: 2}')
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        if isinstance(value, float) and not math.isfinite(value):
            return {math.inf: ".inf", -math.inf: "-.inf"}.get(value, ".nan")
        return repr(value)
    import yaml

    text: str = yaml.safe_dump(value, default_flow_style=True, width=math.inf, allow_unicode=True)
    text = text.strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[:-3].rstrip()
    return text


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> str:
    """Align ``rows`` under ``headers``; columns listed in ``right`` are right-aligned.

    Examples:
        >>> print(table(["NAME", "N"], [["base", "4"], ["base/wide", "12"]], right=[1]))
        NAME        N
        base        4
        base/wide  12
    """
    rows = [list(r) for r in rows]
    right = set(right)
    widths = [len(h) for h in headers]
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    lines = []
    for row in [list(headers), *rows]:
        cells = [cell.rjust(widths[i]) if i in right else cell.ljust(widths[i]) for i, cell in enumerate(row)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _json_safe(value: Any) -> Any:
    """NaN and infinities as the strings ``"nan"``, ``"inf"``, ``"-inf"``: strict JSON has none."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_safe(v) for v in value]
    return value


def to_json(data: Any) -> str:
    """``data`` as indented strict JSON (NaN and infinities as strings, other objects via ``str``).

    Examples:
        >>> print(to_json({"x": float("nan"), "ok": [True]}))
        {
          "x": "nan",
          "ok": [
            true
          ]
        }
    """
    return json.dumps(_json_safe(data), indent=2, ensure_ascii=False, default=str, allow_nan=False)
