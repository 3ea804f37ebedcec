"""``sucrose show SCENARIO``: its merged config, where each value came from, what it overrides."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..config import Config, plain
from ..errors import did_you_mean
from ..refs import has_refs
from .common import PROG
from .render import Output, inline, table, to_json

__all__ = ["Override", "ShowReport", "ShowRow", "render_show", "show_report"]


@dataclass
class Override:
    """An ancestor's value that a key's value replaces."""

    domain: str
    value: Any


@dataclass
class ShowRow:
    """One key of the merged config.

    Attributes:
        key: the dotted key.
        value: its merged value.
        origin: the domain it came from.
        overrides: the values of the ancestors further up the chain that it replaces.
        written: the value as written in the file when it holds a ``${...}`` reference, else ``None``.
    """

    key: str
    value: Any
    origin: str
    overrides: list[Override]
    written: Any = None


@dataclass
class ShowReport:
    """What ``sucrose show`` shows.

    Attributes:
        scenario: the scenario's name.
        chain: its inheritance chain, itself first.
        rows: its keys (under :attr:`prefix` when one is given), in merged order.
        prefix: the ``--prefix`` asked for, or ``None``.
        top_keys: the first parts of all its keys (to suggest a prefix).
        grid: the grid domain that made this scenario, or ``None`` (a domain of the file).
    """

    scenario: str
    chain: list[str]
    rows: list[ShowRow]
    prefix: str | None
    top_keys: list[str]
    grid: str | None = None

    @property
    def prefix_matched_nothing(self) -> bool:
        """Whether a prefix was given and no key lies under it."""
        return self.prefix is not None and not self.rows


def show_report(cfg: Config, name: str, prefix: str | None = None) -> ShowReport:
    """The merged config of scenario ``name`` (only keys under ``prefix`` when given).

    Examples:
        >>> from pathlib import Path
        >>> cfg = Config(Path("config.yaml"), {"base": {"lr": 0.1, "n": 1}, "base/x": {"lr": 0.2}})
        >>> report = show_report(cfg, "base/x", prefix="lr")
        >>> report.chain, [(r.key, r.value, r.origin, r.overrides) for r in report.rows]
        (['base/x', 'base'], [('lr', 0.2, 'base/x', [Override(domain='base', value=0.1)])])
    """
    values, origins = cfg.merged(name)
    raw, _ = cfg.merged(name, resolve=False)
    chain = list(cfg.chain(name))
    head = None if prefix is None else prefix.rstrip(".") + "."
    rows = []
    for key, value in values.items():
        if head is not None and not (key.startswith(head) or key == head[:-1]):
            continue
        origin = origins[key]
        after = chain[chain.index(origin) + 1 :]
        overrides = [Override(d, cfg.domains[d][key]) for d in after if key in cfg.domains[d]]
        rows.append(ShowRow(key, value, origin, overrides, raw[key] if has_refs(raw[key]) else None))
    top_keys = sorted({k.split(".", 1)[0] for k in values})
    return ShowReport(name, chain, rows, prefix, top_keys, cfg.grids.get(name))


def _grid_note(report: ShowReport) -> str:
    return "" if report.grid is None else f" (made by the grid of {report.grid})"


def _overrides_text(row: ShowRow) -> str:
    return ", ".join(f"{o.domain}: {inline(o.value)}" for o in row.overrides)


def show_yaml(report: ShowReport, origin: bool = False) -> str:
    """The merged config as one YAML domain; with ``origin``, comments say where each key came from.

    Examples:
        >>> rows = [ShowRow("lr", 0.2, "base/x", [])]
        >>> report = ShowReport("base/x", ["base/x", "base"], rows, None, ["lr"])
        >>> print(show_yaml(report, origin=True), end="")
        # scenario base/x: chain base/x -> base
        base/x:
          # from base/x
          lr: 0.2
    """
    import yaml

    def dump(data: Any) -> str:
        text: str = yaml.safe_dump(
            data, default_flow_style=False, sort_keys=False, allow_unicode=True, width=100
        )
        return text

    name, rows = report.scenario, report.rows
    if not origin:
        return dump({name: {r.key: r.value for r in rows}})
    out = [f"# scenario {name}: chain {' -> '.join(report.chain)}{_grid_note(report)}"]
    if not rows:
        out.append(f"{dump({name: {}}).rstrip()}")
        return "\n".join(out) + "\n"
    out.append(dump({name: 0}).rstrip()[: -len(" 0")])  # the domain line, quoted as YAML needs
    for r in rows:
        note = f"from {r.origin}"
        if r.written is not None:
            note += f", written {inline(r.written)}"
        if r.overrides:
            note += "; overrides " + _overrides_text(r)
        out.append(f"  # {note}")
        out.extend("  " + line for line in dump({r.key: r.value}).rstrip("\n").split("\n"))
    return "\n".join(out) + "\n"


def _json(report: ShowReport) -> dict[str, Any]:
    return {
        "scenario": report.scenario,
        "chain": report.chain,
        "grid": report.grid,
        "config": {r.key: plain(r.value) for r in report.rows},
        "keys": [
            {
                "key": r.key,
                "value": plain(r.value),
                "origin": r.origin,
                "overrides": [{"domain": o.domain, "value": plain(o.value)} for o in r.overrides],
                **({} if r.written is None else {"written": plain(r.written)}),
            }
            for r in report.rows
        ],
    }


def render_show(report: ShowReport, fmt: str = "table", origin: bool = False) -> Output:
    """The report as a table (``fmt="table"``), YAML (``"yaml"``) or JSON (``"json"``).

    Exit code 1 when the prefix matched no key (the table then prints nothing).

    Examples:
        >>> report = ShowReport("base", ["base"], [ShowRow("lr", 0.1, "base", [])], None, ["lr"])
        >>> print(render_show(report).stdout(), end="")
        KEY  VALUE  FROM  OVERRIDES
        lr   0.1    base
    """
    out = Output(code=1 if report.prefix_matched_nothing else 0)
    if report.prefix_matched_nothing:
        assert report.prefix is not None
        out.err(
            f"{PROG}: no keys under prefix {report.prefix!r} in scenario {report.scenario!r}"
            f"{did_you_mean(report.prefix.rstrip('.'), report.top_keys)}"
        )
        if fmt == "table":
            return out
    if fmt == "json":
        out.out(to_json(_json(report)))
    elif fmt == "yaml":
        out.out(show_yaml(report, origin), end="")
    else:
        if origin:
            out.out(f"{report.scenario}: chain {' -> '.join(report.chain)}{_grid_note(report)}")
        head = ["KEY", "VALUE", "FROM", "OVERRIDES"]
        rows = [[r.key, inline(r.value), r.origin, _overrides_text(r)] for r in report.rows]
        if origin and any(r.written is not None for r in report.rows):
            head.insert(2, "WRITTEN")
            for row, r in zip(rows, report.rows, strict=True):
                row.insert(2, "" if r.written is None else inline(r.written))
        out.out(table(head, rows))
    return out
