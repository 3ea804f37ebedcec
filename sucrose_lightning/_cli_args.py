"""What ``SucroseCLI`` reads before and after LightningCLI parses: the scenario, changed values.

Plain functions on argument lists and parsed namespaces; it imports neither torch nor lightning.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from .values import plain, same_value
from .view import ConfigView

__all__ = ["changed_values", "new_domain_name", "overrides_refusal", "peek_args"]


def peek_args(
    argv: Sequence[str], scenario: str | None, workspace: str
) -> tuple[str | None, str | None, str]:
    """``(subcommand, --scenario, --workspace)`` from the command line, before the real parse.

    The scenario's values become the parser's defaults, so they must be known first.

    Examples:
        >>> peek_args(["fit", "--scenario", "base/case1", "--workspace=ws"], None, ".")
        ('fit', 'base/case1', 'ws')
        >>> peek_args(["--help"], "base", ".")
        (None, 'base', '.')
    """
    sub = argv[0] if argv and not argv[0].startswith("-") else None
    found = {"--scenario": scenario, "--workspace": workspace}
    for i, arg in enumerate(argv):
        name, eq, value = arg.partition("=")
        if name in found:
            if eq:
                found[name] = value
            elif i + 1 < len(argv):
                found[name] = argv[i + 1]
    return sub, found["--scenario"], found["--workspace"] or workspace


def _as_dict(value: Any) -> Any:
    as_dict = getattr(value, "as_dict", None)
    return as_dict() if callable(as_dict) else value


def changed_values(parsed: Any, defaults: Any, groups: Mapping[str, str]) -> dict[str, tuple[Any, Any]]:
    """Config key -> (value before, value parsed) for each init argument the parse changed.

    Args:
        parsed: the parsed config of the subcommand (``{"model": {...}, "data": {...}}``, or
            jsonargparse's ``Namespace``).
        defaults: the parser's defaults (the scenario's values and the signature defaults), alike.
        groups: parser group -> config prefix (``{"model": "model", "data": "data"}``).

    Examples:
        >>> changed_values({"model": {"dim": 128, "act": "relu"}}, {"model": {"dim": 64, "act": "relu"}},
        ...                {"model": "net"})
        {'net.dim': (64, 128)}
    """
    out: dict[str, tuple[Any, Any]] = {}
    for group, prefix in groups.items():
        now = _as_dict(parsed.get(group)) or {}
        before = _as_dict(defaults.get(group)) or {}
        if not isinstance(now, Mapping) or not isinstance(before, Mapping):
            continue
        for key in now:
            old, new = plain(before.get(key)), plain(now[key])
            if not same_value(old, new):
                out[f"{prefix}.{key}" if prefix else key] = (before.get(key), now[key])
    return out


def new_domain_name(scenario: str, changes: Mapping[str, Any]) -> str:
    """A child domain of ``scenario`` named after the changed values.

    Examples:
        >>> new_domain_name("base/case1", {"model.hidden_dim": 128, "optim.lr": 0.5})
        'base/case1/hidden_dim_128-lr_0.5'
    """
    parts = []
    for key, value in changes.items():
        text = value if isinstance(value, (str, int, float)) and not isinstance(value, bool) else "changed"
        parts.append(re.sub(r"[^A-Za-z0-9_.+-]+", "_", f"{key.rsplit('.', 1)[-1]}_{text}").strip("._"))
    return f"{scenario}/" + "-".join(parts)[:80]


def overrides_refusal(
    view: ConfigView,
    parsed: Any,
    defaults: Any,
    groups: Mapping[str, str],
    script: str,
) -> str | None:
    """The message refusing command-line changes of the scenario's values, or ``None``.

    Examples:
        >>> view = sucrose.SucroseScenario(ws, "base/case1")
        >>> text = overrides_refusal(view, {"model": {"hidden_dim": 128}}, {"model": {"hidden_dim": 100}},
        ...                          {"model": "model"}, "train.py")
        >>> print(text.split("\\n")[0])
        the command line changes what scenario 'base/case1' decides:
    """
    changes = changed_values(parsed, defaults, groups)
    if not changes:
        return None
    import yaml

    lines = [f"the command line changes what scenario {view.name!r} decides:"]
    for key, (old, new) in changes.items():
        if key in view.config:
            origin = view.origin(key)
            was = f"{old!r} ({view.config_file.where(origin, key)}, domain {origin!r})"
        else:
            was = f"{old!r}, the parameter's default (no {key} in {view.config_file.path})"
        lines.append(f"  {key}: {new!r} instead of {was}")
    name = new_domain_name(view.name, {k: plain(new) for k, (_, new) in changes.items()})
    domain = yaml.safe_dump({name: {k: plain(new) for k, (_, new) in changes.items()}}, sort_keys=False)
    lines += [
        "Its checkpoints would no longer be reproducible from its name. Record the change as a new "
        f"domain (it inherits everything else from {view.name!r}) in {view.config_file.path}:",
        "",
        *("  " + line for line in domain.rstrip("\n").split("\n")),
        "",
        f"and run it by name: python {script} fit --scenario {name}",
    ]
    return "\n".join(lines)
