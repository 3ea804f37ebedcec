"""``config.yaml``: loading, domain names, inheritance, the merged view and provenance.

A config file maps *domain* names to flat mappings of dotted keys::

    workspace:            # reserved: layout settings, not a scenario
      ckpts_folder: ckpts
    base:
      model.input_dim: 100
      optim.lr: 0.01
    base/case1:           # inherits every key of ``base``, overrides one
      model.input_dim: 200

A domain's parent is the name before its last ``/``; an undefined middle level
is skipped (``base/a/b`` inherits from ``base`` when ``base/a`` is not defined).

This module imports neither torch nor lightning, so config-only use stays fast.
"""

from __future__ import annotations

import gc
import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from ._marks import key_marks
from .errors import ConfigError, DomainNotFoundError, did_you_mean
from .grid import GRID_KEYS, expand_grids
from .names import MAX_NAME_BYTES, WORKSPACE_DOMAIN, check_domain_name, parent_of
from .refs import resolve_refs
from .values import plain, same_value, under_prefix

__all__ = [
    "CONFIG_FILE",
    "MAX_NAME_BYTES",
    "WORKSPACE_DEFAULTS",
    "WORKSPACE_DOMAIN",
    "Config",
    "WorkspaceSettings",
    "check_domain_name",
    "load_config",
    "parent_of",
    "plain",
    "same_value",
    "under_prefix",
]

CONFIG_FILE = "config.yaml"
WORKSPACE_DEFAULTS: dict[str, str] = {
    "ckpts_folder": "ckpts",
    "logs_folder": "logs",
    "epoch_prefix": "e",
    "ckpts_extension": ".pt",
    "lightning_ckpts_extension": ".ckpt",
    "step_key": "step",
}

_PREFIX_RE = re.compile(r"[A-Za-z_-]{1,16}")
_EXT_RE = re.compile(r"\.[A-Za-z0-9_.-]{1,15}")

try:  # libyaml's parser is about 10x faster than the pure-Python one
    _BaseLoader: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _BaseLoader = yaml.SafeLoader


class _Loader(_BaseLoader):  # type: ignore[misc]
    """Safe loader that records duplicate keys instead of silently keeping the last."""

    def __init__(self, stream: Any) -> None:
        super().__init__(stream)
        self.duplicates: list[tuple[str, Any]] = []

    def construct_mapping(self, node: Any, deep: bool = False) -> Any:
        if isinstance(node, yaml.MappingNode):
            self._note_duplicates(node)
        return super().construct_mapping(node, deep=deep)

    def _note_duplicates(self, node: yaml.MappingNode) -> None:
        keys = [k.value for k, _ in node.value if isinstance(k, yaml.ScalarNode)]
        if len(set(keys)) == len(keys):
            return
        seen: set[str] = set()
        for key_node, _ in node.value:
            if not isinstance(key_node, yaml.ScalarNode) or key_node.tag.endswith(":merge"):
                continue
            if key_node.value in seen:
                self.duplicates.append((key_node.value, key_node.start_mark))
            seen.add(key_node.value)


def _where(path: str, mark: Any) -> str:
    return f"{path}:{mark.line + 1}:{mark.column + 1}"


def _check_key(key: object) -> str:
    if not isinstance(key, str):
        return f"keys must be strings, not {type(key).__name__} ({key!r})"
    return f"key {key!r} has an empty part; write dotted keys like 'model.input_dim'"


# A key with no empty dotted part (checked for each of possibly 50,000 keys: keep it one C call).
_GOOD_KEY = re.compile(r"[^.]+(?:\.[^.]+)*").fullmatch


@dataclass(frozen=True)
class WorkspaceSettings:
    """Layout settings from the reserved ``workspace`` domain, each with a default.

    Examples:
        >>> WorkspaceSettings().ckpts_folder
        'ckpts'
    """

    ckpts_folder: str = WORKSPACE_DEFAULTS["ckpts_folder"]
    logs_folder: str = WORKSPACE_DEFAULTS["logs_folder"]
    epoch_prefix: str = WORKSPACE_DEFAULTS["epoch_prefix"]
    ckpts_extension: str = WORKSPACE_DEFAULTS["ckpts_extension"]
    lightning_ckpts_extension: str = WORKSPACE_DEFAULTS["lightning_ckpts_extension"]
    step_key: str = WORKSPACE_DEFAULTS["step_key"]


def _workspace_settings(body: Mapping[Any, Any], where: str, problems: list[str]) -> WorkspaceSettings:
    values = dict(WORKSPACE_DEFAULTS)
    for key, value in body.items():
        if key not in WORKSPACE_DEFAULTS:
            problems.append(
                f"{where}: unknown setting {key!r} in domain 'workspace'"
                f"{did_you_mean(str(key), WORKSPACE_DEFAULTS)} "
                f"(known: {', '.join(WORKSPACE_DEFAULTS)})"
            )
            continue
        if not isinstance(value, str) or not value:
            problems.append(f"{where}: workspace.{key} must be a non-empty string, not {value!r}")
            continue
        if key.endswith("_folder"):
            bad = check_domain_name(value) if value != WORKSPACE_DOMAIN else None
            if bad:
                problems.append(
                    f"{where}: workspace.{key} {value!r} must be a folder inside the workspace: {bad}"
                )
                continue
        elif key == "epoch_prefix" and not _PREFIX_RE.fullmatch(value):
            problems.append(
                f"{where}: workspace.epoch_prefix {value!r} may hold only letters, '_' and '-' (at most 16)"
            )
            continue
        elif key.endswith("_extension") and not _EXT_RE.fullmatch(value):
            problems.append(f"{where}: workspace.{key} {value!r} must look like '.pt' (at most 16 long)")
            continue
        values[key] = value
    if values["ckpts_folder"] == values["logs_folder"]:
        problems.append(f"{where}: workspace.ckpts_folder and workspace.logs_folder must differ")
    if values["ckpts_extension"] == values["lightning_ckpts_extension"]:
        # the plain loop's and Lightning's scans would each pick up the other's files
        problems.append(f"{where}: workspace.ckpts_extension and lightning_ckpts_extension must differ")
    if values["step_key"] == "sucrose":  # scenario.META_KEY would overwrite the step count
        problems.append(f"{where}: workspace.step_key 'sucrose' is reserved for sucrose's own record")
    return WorkspaceSettings(**values)


@dataclass
class Config:
    """A parsed ``config.yaml``: domains, layout settings and the file's hash.

    Use :func:`load_config` to make one.

    Attributes:
        path: the config file.
        domains: domain name -> its own (not merged) keys, in file order.
        settings: layout settings from the ``workspace`` domain.
        sha256: hex digest of the file's bytes.
        grids: each child a grid domain made (see :mod:`.grid`) -> that grid domain.
    """

    path: Path
    domains: dict[str, dict[str, Any]]
    settings: WorkspaceSettings = field(default_factory=WorkspaceSettings)
    sha256: str = ""
    grids: dict[str, str] = field(default_factory=dict)
    _marks: dict[tuple[str, str], str] | None = field(default=None, repr=False, compare=False)

    def where(self, domain: str, key: str) -> str:
        """``file:line:column`` of ``key`` in ``domain`` (the file alone when it cannot be found)."""
        if self._marks is None:
            self._marks = key_marks(self.path)
        return self._marks.get((domain, key), str(self.path))

    @property
    def scenarios(self) -> list[str]:
        """Every domain that can be a scenario (all but ``workspace``), in file order."""
        return [d for d in self.domains if d != WORKSPACE_DOMAIN]

    def require(self, name: str) -> None:
        """Raise :class:`DomainNotFoundError` unless ``name`` is a scenario of this file.

        Raises:
            DomainNotFoundError: with close names, so a typo does not train a new scenario.
        """
        if name in self.domains and name != WORKSPACE_DOMAIN:
            return
        if name == WORKSPACE_DOMAIN:
            raise DomainNotFoundError(
                f"'workspace' in {self.path} holds layout settings and is not a scenario; pick another domain"
            )
        bad = check_domain_name(name)
        if bad:
            raise DomainNotFoundError(f"invalid scenario name {name!r}: {bad}")
        hint = did_you_mean(name, self.scenarios)
        parent = self.nearest_ancestor(name)
        create = (
            f"add '{name}:' to it (an empty body inherits everything from {parent!r})"
            if parent
            else f"add a domain '{name}:' to it"
        )
        raise DomainNotFoundError(
            f"scenario {name!r} is not a domain in {self.path}{hint} To train it, {create}."
        )

    def nearest_ancestor(self, name: str) -> str | None:
        """The closest defined ancestor of ``name`` (skipping undefined levels), or ``None``."""
        parent = parent_of(name)
        while parent is not None and parent not in self.domains:
            parent = parent_of(parent)
        return parent

    def chain(self, name: str) -> tuple[str, ...]:
        """The defined domains searched for ``name``'s keys, child first.

        Examples:
            >>> cfg = Config(Path("c.yaml"), {"a": {}, "a/b/c": {}})
            >>> cfg.chain("a/b/c")
            ('a/b/c', 'a')
        """
        out = [name] if name in self.domains else []
        ancestor = self.nearest_ancestor(name)
        while ancestor is not None:
            out.append(ancestor)
            ancestor = self.nearest_ancestor(ancestor)
        return tuple(out)

    def merged(self, name: str, *, resolve: bool = True) -> tuple[dict[str, Any], dict[str, str]]:
        """Merge ``name``'s chain once: (key -> value, key -> domain that set it).

        ``${key}`` references are resolved after the merge (``resolve=False`` keeps them).

        Raises:
            ConfigError: a reference names no key, or references go round in a circle.
        """
        values: dict[str, Any] = {}
        origins: dict[str, str] = {}
        for domain in reversed(self.chain(name)):
            body = self.domains[domain]
            values.update(body)
            origins.update(dict.fromkeys(body, domain))
        if resolve:
            values, problems = resolve_refs(values, origins, self.where, name)
            if problems:
                raise ConfigError(str(self.path), problems)
        return values, origins


def load_config(path: str | Path) -> Config:
    """Read and check ``config.yaml``; every problem of the file is reported at once.

    Args:
        path: the config file, or a workspace folder holding ``config.yaml``.

    Returns:
        The parsed :class:`Config`.

    Raises:
        ConfigError: the file is missing, is not valid YAML, or breaks a rule (top level not a
            mapping, a domain body that is not a mapping, duplicate keys, bad domain names,
            unknown workspace settings); the message lists every problem with file:line:column.

    Examples:
        >>> import tempfile, pathlib
        >>> ws = pathlib.Path(tempfile.mkdtemp())
        >>> _ = (ws / "config.yaml").write_text("base:\\n  model.dim: 3\\nbase/small:\\n")
        >>> load_config(ws).merged("base/small")[0]
        {'model.dim': 3}
    """
    # The parse builds a few objects per key and none of them form cycles: collections during
    # it only cost time (about half of scenario() on a 1 MB config, more once torch is imported).
    enabled = gc.isenabled()
    gc.disable()
    try:
        return _load_config(path)
    finally:
        if enabled:
            gc.enable()


def _load_config(path: str | Path) -> Config:
    path = Path(path)
    if path.is_dir() or (not path.exists() and path.suffix not in (".yaml", ".yml")):
        path = path / CONFIG_FILE
    shown = str(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(
            shown,
            [
                f"no config file at {shown}"
                + ("" if path.parent.is_dir() else f" (the workspace folder {path.parent} does not exist)")
                + ": create it with domains like 'base:' (see the README)"
            ],
        ) from None
    except OSError as err:
        raise ConfigError(shown, [f"cannot read {shown}: {err.strerror or err}"]) from None

    loader = _Loader(data)
    try:
        root = loader.get_single_node()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = _where(shown, mark) if mark else shown
        raise ConfigError(shown, [f"{where}: YAML syntax error: {err.problem or err}"]) from None
    except yaml.YAMLError as err:
        raise ConfigError(shown, [f"{shown}: YAML error: {err}"]) from None

    problems: list[str] = []
    domains: dict[str, dict[str, Any]] = {}
    settings = WorkspaceSettings()
    grids: dict[str, str] = {}
    if root is None:
        pass  # an empty file has no domains; asking for a scenario names the file
    elif not isinstance(root, yaml.MappingNode):
        problems.append(
            f"{_where(shown, root.start_mark)}: the top level must map domain names to their keys "
            "(like 'base:'), not a " + ("list" if isinstance(root, yaml.SequenceNode) else "value")
        )
    else:
        loader._note_duplicates(root)
        for name_node, body_node in root.value:
            read = _read_domain(loader, name_node, body_node, shown, problems)
            if read is None:
                continue
            name, body = read
            if name == WORKSPACE_DOMAIN:
                settings = _workspace_settings(body, _where(shown, name_node.start_mark), problems)
            domains[name] = body
        domains, grids = expand_grids(domains, root, shown, problems)  # grid domains: see grid.py
    for key, mark in loader.duplicates:
        problems.append(
            f"{_where(shown, mark)}: duplicate key {key!r} (YAML would silently keep the last one); "
            "remove or rename one of them"
        )
    loader.dispose()
    if problems:
        problems.sort(key=_problem_order)
        raise ConfigError(shown, problems)
    return Config(
        path=path,
        domains=domains,
        settings=settings,
        sha256=hashlib.sha256(data).hexdigest(),
        grids=grids,
    )


def _read_domain(
    loader: _Loader, name_node: Any, body_node: Any, shown: str, problems: list[str]
) -> tuple[str, dict[str, Any]] | None:
    """Build one top-level entry; its problems go to ``problems`` and ``None`` is returned."""
    where = _where(shown, name_node.start_mark)
    try:
        name = loader.construct_object(name_node, deep=True)
        bad = check_domain_name(name)
        if bad:
            problems.append(f"{where}: bad domain name {name!r}: {bad}")
            return None
        if isinstance(body_node, yaml.ScalarNode) and body_node.tag.endswith(":null"):
            return name, {}  # `base/test2:` with nothing after it
        body = None
        if isinstance(body_node, yaml.MappingNode):
            body = loader.construct_object(body_node, deep=True)
        if not isinstance(body, dict):  # (a `!!set {a, b}` body is a mapping node too, but builds a set)
            problems.append(
                f"{_where(shown, body_node.start_mark)}: the body of domain {name!r} must be a "
                "mapping of keys to values (like 'model.dim: 3') or empty"
            )
            return None
    except yaml.YAMLError as err:
        mark = getattr(err, "problem_mark", None)
        problems.append(f"{_where(shown, mark) if mark else where}: {getattr(err, 'problem', None) or err}")
        return None
    except TypeError as err:  # e.g. an unhashable mapping key such as `[a, b]: 1`
        problems.append(f"{where}: {err}")
        return None
    except _CONSTRUCT_ERRORS as err:  # a value PyYAML cannot build, e.g. `2020-13-45`
        problems.append(_construct_problem(loader, body_node, shown, err))
        return None
    for key in body:
        if (type(key) is not str or not _GOOD_KEY(key)) and key not in GRID_KEYS:
            problems.append(f"{where}: domain {name!r}: {_check_key(key)}")
    return name, body


# What PyYAML's constructors raise, besides YAMLError, for a value they cannot build:
# `2020-13-45` (an implicit timestamp with month 13: ValueError), `!!int abc` (ValueError),
# `!!bool maybe` (KeyError), `!!timestamp x` (AttributeError), and a value nested a few
# hundred levels deep (RecursionError).
_CONSTRUCT_ERRORS = (ValueError, KeyError, AttributeError, OverflowError, RecursionError)


def _construct_problem(loader: Any, root: Any, shown: str, err: BaseException) -> str:
    """``file:line:column`` of the first scalar under ``root`` that cannot be built, and why."""
    culprit = None
    stack = [root]
    while stack and culprit is None:
        node = stack.pop()
        if isinstance(node, yaml.ScalarNode):
            try:
                loader.construct_object(node)
            except Exception:
                culprit = node
        elif isinstance(node, yaml.MappingNode):
            stack.extend(n for pair in reversed(node.value) for n in reversed(pair))
        elif isinstance(node, yaml.SequenceNode):
            stack.extend(reversed(node.value))
    mark = (culprit or root).start_mark
    if culprit is None:
        why = f"{type(err).__name__}: {err}"
        return f"{_where(shown, mark)}: cannot build a value ({why}); is it nested too deeply?"
    kind = culprit.tag.rsplit(":", 1)[-1]
    return (
        f"{_where(shown, mark)}: cannot read the value {culprit.value!r} as {kind} ({err}); "
        "quote it to keep it as text"
    )


def _problem_order(problem: str) -> tuple[int, int]:
    match = re.search(r":(\d+):(\d+):", problem)
    return (int(match.group(1)), int(match.group(2))) if match else (0, 0)
