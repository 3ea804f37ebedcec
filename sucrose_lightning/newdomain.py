"""Add a named variant to ``config.yaml``: :func:`new_domain` (and ``sucrose new``).

The new domain is appended as text at the end of the file: every byte already there (comments,
blank lines, order, quoting) stays as it was. The file is then checked by loading it again and
replaced atomically; if it changed meanwhile (an editor saved it), nothing is written. Imports
neither torch nor lightning.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from . import _atomic
from .config import CONFIG_FILE, load_config
from .errors import ConfigError, did_you_mean
from .grid import GRID_KEYS
from .names import WORKSPACE_DOMAIN, check_domain_name

__all__ = ["domain_text", "new_domain", "parse_set"]

_KEY = re.compile(r"[^.\s=][^=]*")


def parse_set(text: str) -> tuple[str, Any]:
    """One ``--set key=value``: the key and the value read as YAML.

    Raises:
        ValueError: no ``=``, an empty key, or a value that is not valid YAML.

    Examples:
        >>> parse_set("optim.lr=0.01"), parse_set("model.layers=[64, 64]"), parse_set("name=adam")
        (('optim.lr', 0.01), ('model.layers', [64, 64]), ('name', 'adam'))
    """
    key, eq, raw = text.partition("=")
    key = key.strip()
    if not eq or not key:
        raise ValueError(f"--set {text!r}: write it as key=value, like optim.lr=0.01")
    try:
        value = yaml.safe_load(raw) if raw.strip() else None
    except yaml.YAMLError as err:
        problem = getattr(err, "problem", None) or err
        raise ValueError(f"--set {text!r}: the value is not valid YAML ({problem}); quote it") from None
    return key, value


def domain_text(name: str, values: Mapping[str, Any]) -> str:
    """The YAML text of one domain, as :func:`new_domain` appends it.

    Examples:
        >>> print(domain_text("base/wide", {"model.width": 256, "optim.betas": [0.9, 0.99]}), end="")
        base/wide:
          model.width: 256
          optim.betas: [0.9, 0.99]
    """
    head = yaml.safe_dump({name: None}, allow_unicode=True, width=10**6).rstrip("\n")
    lines = [head[: -len(" null")] if head.endswith(" null") else head]
    for key, value in values.items():
        item = yaml.safe_dump({key: value}, allow_unicode=True, default_flow_style=True, width=10**6)
        lines.append("  " + item.strip()[1:-1])  # `{key: value}` without its braces
    return "\n".join(lines) + "\n"


def new_domain(
    workspace: str | os.PathLike[str],
    name: str,
    values: Mapping[str, Any] | None = None,
    *,
    new_keys: bool = False,
    dry_run: bool = False,
) -> str:
    """Append domain ``name`` with ``values`` to the workspace's ``config.yaml``; returns the text added.

    ``name`` inherits from its nearest defined ancestor (the part before its last ``/``). The
    file keeps every byte it had; the new lines go at its end.

    Args:
        workspace: the workspace folder (or its ``config.yaml``).
        name: the new domain, e.g. ``"base/wide"``.
        values: dotted key -> value; each key must be set by an ancestor (a typo would
            otherwise add a key nothing reads) unless ``new_keys``. ``.grid`` / ``.zip`` make it
            a grid domain (see :mod:`sucrose_lightning.grid`).
        new_keys: allow keys that no ancestor sets.
        dry_run: only return the text; the file is not touched.

    Returns:
        The lines added (with the blank line before them).

    Raises:
        ConfigError: every problem at once: the name is bad or already a domain (a grid's child
            counts), a key no ancestor sets, the file broken before or after.

    Examples:
        >>> added = sucrose.new_domain(ws, "base/wide", {"model.hidden_dim": 256})
        >>> print(added, end="")
        <BLANKLINE>
        base/wide:
          model.hidden_dim: 256
        >>> sucrose.load_config(ws).merged("base/wide")[0]["model.hidden_dim"]
        256
    """
    cfg = load_config(Path(workspace))
    path = cfg.path.resolve()
    values = dict(values or {})
    problems: list[str] = []
    bad = check_domain_name(name)
    if bad:
        problems.append(f"bad domain name {name!r}: {bad}")
    elif name == WORKSPACE_DOMAIN or name in cfg.domains:
        made_by = f" (a child of the grid domain {cfg.grids[name]!r})" if name in cfg.grids else ""
        problems.append(f"domain {name!r} already exists in {cfg.path}{made_by}; pick another name")
    parent = None if bad else cfg.nearest_ancestor(name)
    known = cfg.merged(parent)[0] if parent is not None else {}
    for key in values:
        if not isinstance(key, str) or not _KEY.fullmatch(key) or (".." in key or key.endswith(".")):
            if key not in GRID_KEYS:
                problems.append(f"key {key!r} is not a dotted config key like 'optim.lr'")
        elif key not in known and not new_keys and key not in GRID_KEYS:
            source = f"its ancestor {parent!r}" if parent else "no ancestor (it is a top-level domain)"
            problems.append(
                f"key {key!r} is not set by {source}{did_you_mean(key, list(known))} "
                "Pass --new-key (new_keys=True) to add a new key."
            )
    if problems:
        raise ConfigError(str(cfg.path), problems)
    data = path.read_bytes()
    kept = data if not data or data.endswith(b"\n") else data + b"\n"
    added = ("\n" if data else "") + domain_text(name, values)
    new = kept + added.encode()
    _check(new, cfg.path, name)
    if dry_run:
        return added
    if path.read_bytes() != data:
        raise ConfigError(str(cfg.path), [f"{cfg.path} changed while the domain was added; run it again"])
    _atomic.atomic_write_bytes(path, new, "config file")
    return added


def _check(new: bytes, shown: Path, name: str) -> None:
    """Load the new file's text (in a scratch folder) and raise its problems, naming ``shown``."""
    with tempfile.TemporaryDirectory() as scratch:
        (Path(scratch) / CONFIG_FILE).write_bytes(new)
        try:
            cfg = load_config(scratch)
        except ConfigError as err:
            here = str(Path(scratch) / CONFIG_FILE)
            raise ConfigError(
                str(shown), [f"adding {name!r}: " + p.replace(here, str(shown)) for p in err.problems]
            ) from None
    if name not in cfg.domains:  # pragma: no cover - the text above always defines it
        raise ConfigError(str(shown), [f"adding {name!r} did not define it; please report this"])
