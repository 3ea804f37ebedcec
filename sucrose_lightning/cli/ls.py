"""``sucrose ls``: the scenario tree with what each scenario has on disk, and orphan folders.

STATUS is the newest run's outcome from the scenario's run history (``running on host/pid``,
``finished``, ``stopped``, ``failed``, ``killed``); EPOCHS shows ``done/target`` when that run
recorded its epoch target. ``--format json`` adds the whole ``history`` of each scenario.
``sucrose ls PATTERN...`` lists only the scenarios (and orphans) matching a pattern (``base/lr/*``).

Its cost is one listing of each scenario's folder, one ``stat`` and one cheap check of each
scenario's newest file: no per-file ``stat`` (about 2 µs each, the largest per-file cost in a
workspace of 100,000 checkpoints). ``--size`` adds the SIZE column, a ``stat`` of every file.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import CONFIG_FILE, Config
from ..inventory import find_orphans, list_tree, scenario_files, scenario_tree
from ..status import RunHistory, RunStatus
from ..store import ScenarioFiles
from .render import Output, human_size, iso_time, local_time, table, to_json

__all__ = ["LsEntry", "LsReport", "files_json", "ls_report", "render_ls", "status_text"]

_HEADERS = ["SCENARIO", "EPOCHS", "CKPTS", "NEWEST", "LOGS", "STATUS"]
_SIZE_AT = 3  # where ``--size`` puts the SIZE column


@dataclass
class LsEntry:
    """One scenario of the tree.

    Attributes:
        files: what it has on disk.
        depth: 0 for a top-level domain, 1 for its children, ...
        parent: its nearest ancestor domain, or ``None``.
        history: its recorded runs, oldest first.
    """

    files: ScenarioFiles
    depth: int
    parent: str | None
    history: list[RunStatus] = field(default_factory=list)


@dataclass
class LsReport:
    """What ``sucrose ls`` shows.

    Attributes:
        workspace: the workspace folder.
        config: its ``config.yaml``.
        scenarios: every scenario in tree order.
        orphans: folders with files but no domain, by name.
        sizes: whether the checkpoints' sizes were added up (``--size``).
    """

    workspace: Path
    config: Path
    scenarios: list[LsEntry]
    orphans: list[ScenarioFiles]
    sizes: bool = False


def ls_report(
    ws: Path,
    cfg: Config,
    only: Sequence[str] | None = None,
    sizes: bool = False,
    orphans_matching: Callable[[str], bool] | None = None,
) -> LsReport:
    """The inventory of every scenario of ``cfg`` (tree order) and of the orphan folders.

    ``only``: list only these scenarios and orphan folders (``None``: all of them).
    ``sizes``: also add up each scenario's checkpoint sizes (a ``stat`` per file).
    ``orphans_matching``: with ``only``, also list the orphan folders it accepts.

    Examples:
        >>> import tempfile
        >>> ws = Path(tempfile.mkdtemp())
        >>> report = ls_report(ws, Config(ws / "config.yaml", {"base": {}, "base/wide": {}}))
        >>> [(e.files.name, e.depth, e.parent) for e in report.scenarios], report.orphans
        ([('base', 0, None), ('base/wide', 1, 'base')], [])
    """
    keep = None if only is None else set(only)
    listing = list_tree(ws / cfg.settings.ckpts_folder)  # one walk: every folder listed once
    scenarios = [
        LsEntry(
            scenario_files(ws, name, cfg.settings, sizes, listing),
            depth,
            cfg.nearest_ancestor(name),
            _history(ws / cfg.settings.ckpts_folder / name, name),
        )
        for name, depth in scenario_tree(cfg)
        if keep is None or name in keep
    ]
    if keep is not None and scenarios:  # a filtered tree starts at the left margin
        top = min(e.depth for e in scenarios)
        for e in scenarios:
            e.depth -= top
    orphans = [
        scenario_files(ws, name, cfg.settings, sizes, listing)
        for name in find_orphans(ws, cfg, listing)
        if keep is None or name in keep or (orphans_matching is not None and orphans_matching(name))
    ]
    return LsReport(ws, cfg.path, scenarios, orphans, sizes)


def _history(folder: Path, name: str) -> list[RunStatus]:
    from ..errors import SucroseError

    try:
        return RunHistory(folder, name).runs()
    except SucroseError:  # a planted symlink or an unreadable file: ls still lists the rest
        return []


def status_text(run: RunStatus | None) -> str:
    """The STATUS cell for a scenario's newest run.

    Examples:
        >>> status_text(None)
        '-'
        >>> status_text(RunStatus("h:1:2", "lightning", "running", "2026-01-01 10:00:00", "node7", 4242))
        'running on node7/4242'
    """
    if run is None:
        return "-"
    if run.status == "running":
        return f"running on {run.host}/{run.pid}"
    return run.status


def files_json(info: ScenarioFiles) -> dict[str, Any]:
    """One scenario's inventory as plain data for ``--format json``.

    Examples:
        >>> files_json(ScenarioFiles("base"))["epochs"] is None
        True
    """
    newest = info.newest
    return {
        "name": info.name,
        "epochs": newest.epochs if newest else None,
        "step": newest.step if newest else None,
        "ckpts": len(info.ckpts),
        "size": info.total_size,
        "newest_time": iso_time(info.newest_time),
        "logs": info.logs,
        "unreadable_newer": info.unreadable_newer,
    }


def _row(
    label: str, info: ScenarioFiles, history: list[RunStatus] | None = None, sizes: bool = False
) -> list[str]:
    newest = info.newest
    latest = history[-1] if history else None
    target = "" if latest is None or latest.target is None else f"/{latest.target}"
    epochs = (
        "-"
        if newest is None
        else str(newest.epochs) + target + ("" if newest.step is None else f" s{newest.step}")
    )
    if info.unreadable_newer:
        epochs += " *"
    row = [label, epochs, str(len(info.ckpts)), local_time(info.newest_time), "yes" if info.logs else "no"]
    row.append(status_text(latest))
    if sizes:
        row.insert(_SIZE_AT, human_size(info.total_size or 0) if info.ckpts else "-")
    return row


def _headers(sizes: bool) -> list[str]:
    return [*_HEADERS[:_SIZE_AT], "SIZE", *_HEADERS[_SIZE_AT:]] if sizes else _HEADERS


def render_ls(report: LsReport, fmt: str = "table") -> Output:
    """The tree as a table (``fmt="table"``) or JSON (``"json"``).

    Examples:
        >>> base = LsEntry(ScenarioFiles("base"), 0, None)
        >>> report = LsReport(Path("/ws"), Path("/ws/config.yaml"), [base], [])
        >>> print(render_ls(report).stdout(), end="")
        SCENARIO  EPOCHS  CKPTS  NEWEST  LOGS  STATUS
        base           -      0  -       no    -
    """
    out = Output()
    if fmt == "json":
        scenarios = [
            {
                **files_json(e.files),
                "depth": e.depth,
                "parent": e.parent,
                "status": e.history[-1].status if e.history else None,
                "target": e.history[-1].target if e.history else None,
                "history": [r.as_dict() for r in e.history],
            }
            for e in report.scenarios
        ]
        out.out(
            to_json(
                {
                    "workspace": str(report.workspace),
                    "config": str(report.config),
                    "scenarios": scenarios,
                    "orphans": [files_json(o) for o in report.orphans],
                }
            )
        )
        return out
    if not report.scenarios:
        out.out(f"no scenarios in {report.config}; add a domain such as 'base:'")
    else:
        rows = [
            _row("  " * e.depth + e.files.name, e.files, e.history, report.sizes) for e in report.scenarios
        ]
        out.out(table(_headers(report.sizes), rows, right=_right(report.sizes)))
    if any(i.unreadable_newer for i in [*(e.files for e in report.scenarios), *report.orphans]):
        out.out("\n* newer checkpoint(s) cannot be read (partial or corrupt); 'sucrose check' lists them")
    if report.orphans:
        out.out()
        out.out(f"orphans (files but no domain in {CONFIG_FILE}):")
        orphan_rows = [_row(o.name, o, None, report.sizes) for o in report.orphans]
        out.out(table(_headers(report.sizes), orphan_rows, right=_right(report.sizes)))
    return out


def _right(sizes: bool) -> tuple[int, ...]:
    return (1, 2, _SIZE_AT) if sizes else (1, 2)
