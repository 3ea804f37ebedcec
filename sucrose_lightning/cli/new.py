"""``sucrose new NAME [--set key=value ...]``: add a named variant to ``config.yaml``."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import CONFIG_FILE
from ..errors import ConfigError
from ..newdomain import new_domain, parse_set
from .common import UsageError, load_workspace
from .render import Output, rel, to_json

__all__ = ["NewReport", "new_report", "render_new"]


@dataclass
class NewReport:
    """What ``sucrose new`` added (or, with ``--dry-run``, would add).

    Attributes:
        config: the config file.
        name: the new domain.
        values: its keys.
        text: the lines appended.
        dry_run: whether the file was left as it was.
    """

    config: Path
    name: str
    values: dict[str, Any]
    text: str
    dry_run: bool


def new_report(
    ws: Path, name: str, sets: Sequence[str], new_keys: bool = False, dry_run: bool = False
) -> NewReport:
    """Parse the ``--set`` options and add the domain.

    Raises:
        UsageError: a ``--set`` that is not ``key=value`` with a YAML value, a key given twice,
            or a domain the file's rules refuse (every problem listed).
        ConfigError: ``config.yaml`` was broken before.
    """
    values: dict[str, Any] = {}
    for text in sets:
        try:
            key, value = parse_set(text)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if key in values:
            raise UsageError(f"--set {key}=... is given twice; keep one")
        values[key] = value
    load_workspace(ws)  # a missing or broken file is reported as by every command
    try:
        added = new_domain(ws, name, values, new_keys=new_keys, dry_run=dry_run)
    except ConfigError as err:
        raise UsageError(str(err)) from None
    return NewReport(ws / CONFIG_FILE, name, values, added, dry_run)


def render_new(report: NewReport, fmt: str = "text") -> Output:
    """What was appended (text) or the report as JSON (``fmt="json"``).

    Examples:
        >>> r = NewReport(Path("config.yaml"), "base/wide", {"lr": 1}, "\\nbase/wide:\\n  lr: 1\\n", False)
        >>> print(render_new(r).stdout(), end="")
        added 'base/wide' to config.yaml:
        <BLANKLINE>
        base/wide:
          lr: 1
    """
    out = Output()
    if fmt == "json":
        out.out(
            to_json(
                {
                    "config": str(report.config),
                    "name": report.name,
                    "values": report.values,
                    "text": report.text,
                    "dry_run": report.dry_run,
                }
            )
        )
        return out
    verb = "would add" if report.dry_run else "added"
    out.out(f"{verb} {report.name!r} to {rel(report.config)}:")
    out.out(report.text, end="")
    return out
