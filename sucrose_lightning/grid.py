"""Grid domains: a domain's ``.grid`` (every combination) and ``.zip`` (paired) keys become children.

A domain may hold two reserved keys (a leading ``.`` is never a config key, so they cannot clash
with one)::

    base/lr:
      optim.momentum: 0.9      # ordinary keys: every child inherits them
      .grid:                   # every combination, first key slowest
        optim.lr: [0.1, 0.01, 0.001]
        optim.wd: [0, 0.0001]

expands, right after ``base/lr``, into six ordinary domains ``base/lr/lr=0.1,wd=0``, ...,
``base/lr/lr=0.001,wd=0.0001``, each setting its two keys. ``.zip`` pairs its lists instead
(all of one length); with both, every ``.grid`` combination is taken with every ``.zip`` row.

A child's name is ``<key>=<value>`` per key, joined by ``,`` in the order written; ``<key>`` is
the key's last dotted part, or the whole key when two grid keys share that part. Values are
named as YAML writes them (``0.01``, ``true``, ``null``, ``adam``); a value that cannot name a
folder (a list, a mapping, text with ``/``) is refused, as are a name that is already a domain,
two values naming one child and more than :data:`GRID_LIMIT` children (a typo such as
``range`` of a million values). Config loading calls :func:`expand_grids`; it imports neither
torch nor lightning.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

from .names import check_domain_name

__all__ = ["GRID_KEY", "GRID_KEYS", "GRID_LIMIT", "ZIP_KEY", "expand_grids", "value_label"]

GRID_KEY = ".grid"
ZIP_KEY = ".zip"
#: The reserved keys of a grid domain.
GRID_KEYS = frozenset((GRID_KEY, ZIP_KEY))
#: The most children one grid domain may expand into.
GRID_LIMIT = 1000


def value_label(value: object) -> str | None:
    """How ``value`` reads in a child's name, or ``None`` when it cannot name a folder.

    Examples:
        >>> [value_label(v) for v in (0.01, 0, 1e-05, True, None, "adam")]
        ['0.01', '0', '1e-05', 'true', 'null', 'adam']
        >>> value_label([1, 2]) is None, value_label("a/b") is None
        (True, True)
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str) and value and "/" not in value and "," not in value and "=" not in value:
        return value if check_domain_name(value) is None else None
    return None


def _where(shown: str, mark: Any) -> str:
    return f"{shown}:{mark.line + 1}:{mark.column + 1}"


def _marks(root: Any) -> dict[str, Any]:
    """Domain name -> the start mark of its name in the file (for messages)."""
    return {str(getattr(k, "value", "")): k.start_mark for k, _ in root.value}


def _columns(name: str, spec: object, what: str, where: str, problems: list[str]) -> dict[str, list[Any]]:
    if not isinstance(spec, dict) or not spec:
        problems.append(
            f"{where}: domain {name!r}: {what} must map keys to lists of values, "
            f"like '{what}: {{optim.lr: [0.1, 0.01]}}'"
        )
        return {}
    columns: dict[str, list[Any]] = {}
    for key, values in spec.items():
        if not isinstance(key, str) or not key or key.startswith(".") or ".." in key or key.endswith("."):
            problems.append(f"{where}: domain {name!r}: {what} key {key!r} is not a dotted config key")
        elif not isinstance(values, list) or not values:
            problems.append(
                f"{where}: domain {name!r}: {what} {key!r} must be a non-empty list of values, "
                f"like '{key}: [0.1, 0.01]' (not {values!r})"
            )
        else:
            columns[key] = values
    return columns


def _rows(name: str, body: dict[str, Any], where: str, problems: list[str]) -> list[dict[str, Any]]:
    """Every child's keys, in order; problems are appended and ``[]`` returned."""
    grid = _columns(name, body.pop(GRID_KEY), GRID_KEY, where, problems) if GRID_KEY in body else {}
    zipped = _columns(name, body.pop(ZIP_KEY), ZIP_KEY, where, problems) if ZIP_KEY in body else {}
    both = set(grid) & set(zipped)
    if both:
        problems.append(
            f"{where}: domain {name!r}: {sorted(both)} in both {GRID_KEY} and {ZIP_KEY}; keep one"
        )
        return []
    lengths = {len(v) for v in zipped.values()}
    if len(lengths) > 1:
        sizes = ", ".join(f"{k}: {len(v)}" for k, v in zipped.items())
        problems.append(f"{where}: domain {name!r}: the lists of {ZIP_KEY} must be of one length ({sizes})")
        return []
    count = math.prod(len(v) for v in grid.values()) * (lengths.pop() if lengths else 1)
    if count > GRID_LIMIT:
        problems.append(
            f"{where}: domain {name!r}: the grid makes {count} children, more than {GRID_LIMIT}; "
            "shorten its lists or split it into several grid domains"
        )
        return []
    if not grid and not zipped:
        return []
    zip_rows = (
        [dict(zip(zipped, row, strict=True)) for row in zip(*zipped.values(), strict=True)]
        if zipped
        else [{}]
    )
    grid_rows = [dict(zip(grid, row, strict=True)) for row in itertools.product(*grid.values())]
    return [{**g, **z} for g in grid_rows for z in zip_rows]


def _short_keys(keys: list[str]) -> dict[str, str]:
    last = [k.rsplit(".", 1)[-1] for k in keys]
    return {k: (s if last.count(s) == 1 else k) for k, s in zip(keys, last, strict=True)}


def expand_grids(
    domains: dict[str, dict[str, Any]], root: Any, shown: str, problems: list[str]
) -> tuple[dict[str, dict[str, Any]], dict[str, str]]:
    """Expand every grid domain of ``domains`` into its children, placed right after it.

    Args:
        domains: the file's domains (name -> own keys) in file order; grid bodies lose their
            reserved keys.
        root: the file's top-level YAML mapping node (for line numbers).
        shown: the file's name in messages.
        problems: where every problem goes, as ``file:line:col: ...``.

    Returns:
        The domains with the children in place, and child -> the grid domain it came from.

    Examples:
        >>> import yaml
        >>> text = "base/lr:\\n  .grid: {optim.lr: [0.1, 0.01]}\\n"
        >>> root = yaml.compose(text)
        >>> domains, parents = expand_grids(yaml.safe_load(text), root, "c.yaml", [])
        >>> list(domains), parents["base/lr/lr=0.01"]
        (['base/lr', 'base/lr/lr=0.1', 'base/lr/lr=0.01'], 'base/lr')
    """
    if not any(GRID_KEY in body or ZIP_KEY in body for body in domains.values()):
        return domains, {}
    marks = _marks(root)
    out: dict[str, dict[str, Any]] = {}
    parents: dict[str, str] = {}
    for name, body in domains.items():
        out[name] = body
        if GRID_KEY not in body and ZIP_KEY not in body:
            continue
        where = _where(shown, marks[name]) if name in marks else shown
        rows = _rows(name, body, where, problems)
        if not rows:
            continue
        short = _short_keys(list(rows[0]))
        for row in rows:
            parts = []
            for key, value in row.items():
                label = value_label(value)
                if label is None:
                    problems.append(
                        f"{where}: domain {name!r}: the grid value {value!r} of {key!r} cannot name a "
                        "folder (use numbers, true/false, null or words without '/', ',' or '=')"
                    )
                    break
                parts.append(f"{short[key]}={label}")
            else:
                child = f"{name}/{','.join(parts)}"
                bad = check_domain_name(child)
                if child in domains or child in out:
                    there = f" ({_where(shown, marks[child])})" if child in marks else ""
                    what = "a domain of the file" if child in domains else "made twice by the grid"
                    problems.append(
                        f"{where}: domain {name!r}: the grid child {child!r} is {what}{there}; "
                        "rename one or remove the duplicate value"
                    )
                elif bad:
                    problems.append(f"{where}: domain {name!r}: the grid child {child!r}: {bad}")
                else:
                    out[child] = row
                    parents[child] = name
                continue
            break
    return out, parents
