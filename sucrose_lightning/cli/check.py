"""``sucrose check``: every problem of a workspace at once.

Config problems come from :func:`~sucrose_lightning.config.load_config`, each scenario's file
problems from its :meth:`~sucrose_lightning.store.CheckpointStore.problems`, orphan folders from
:func:`~sucrose_lightning.inventory.find_orphans`; this module only collects and prints them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .. import _atomic
from .._peek import recorded_scenario
from ..config import CONFIG_FILE, Config, WorkspaceSettings, load_config
from ..errors import ConfigError
from ..inventory import all_folders, find_orphans, scenario_files, store_of
from ..store import CheckpointStore
from .render import Output, rel, to_json
from .targets import load_target, parse_target, scenario_problems

__all__ = ["CheckReport", "Note", "Problem", "check_report", "record_problems", "render_check"]


@dataclass
class Problem:
    """One problem: its kind (``config``, ``type``, ``ckpt``, ``temp``, ``orphan``, ``record``), the path,
    the message.

    ``type`` problems are a scenario's values that its references or a ``--target`` refuse.
    ``extra`` holds the fields a kind adds to the JSON output (``record``: ``scenario``, the
    folder's, and ``recorded``, the one the checkpoint names).
    """

    kind: str
    path: str
    message: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Note:
    """Something worth knowing that is not a problem; ``path`` is ``None`` for the whole workspace."""

    path: str | None
    message: str

    def text(self) -> str:
        """The note as printed: the path (relative when inside the current folder), then the message.

        Examples:
            >>> Note("/ws/ckpts/base/.base_e2.pt.7.1.tmp", "a save in progress").text()
            '/ws/ckpts/base/.base_e2.pt.7.1.tmp: a save in progress'
            >>> Note(None, "config.yaml could not be read").text()
            'config.yaml could not be read'
        """
        return self.message if self.path is None else f"{rel(self.path)}: {self.message}"


@dataclass
class CheckReport:
    """What ``sucrose check`` found.

    Attributes:
        problems: every problem, config problems first, then per scenario.
        notes: saves in progress, and what could not be checked.
        scenarios: how many scenarios the config has (0 when it cannot be read).
        ckpts: how many checkpoints were checked.
        verify: whether every byte was CRC-checked.
    """

    problems: list[Problem] = field(default_factory=list)
    notes: list[Note] = field(default_factory=list)
    scenarios: int = 0
    ckpts: int = 0
    verify: bool = False

    @property
    def ok(self) -> bool:
        """Whether no problem was found."""
        return not self.problems


def check_report(ws: Path, verify: bool = False, targets: Sequence[str] = ()) -> CheckReport:
    """Check the config, every checkpoint, leftover temporary files and orphan folders of ``ws``.

    With a broken ``config.yaml`` the files are still checked, in every folder under the
    default checkpoint folder (the layout settings and the domains are unknown then).
    Every scenario's ``${...}`` references are resolved; each target (``"model=mypkg.MyNet"``)
    checks every scenario's values under its prefix against the callable's annotations
    (see :mod:`.targets`).

    Raises:
        UsageError: a target cannot be imported.

    Examples:
        >>> import tempfile
        >>> ws = Path(tempfile.mkdtemp())
        >>> _ = (ws / "config.yaml").write_text("base: {}\\n")
        >>> report = check_report(ws)
        >>> report.ok, report.scenarios, report.ckpts
        (True, 1, 0)
    """
    report = CheckReport(verify=verify)
    callables = [(prefix, load_target(target)) for prefix, target in map(parse_target, targets)]
    cfg: Config | None = None
    if not (ws / CONFIG_FILE).exists():
        report.problems.append(Problem("config", str(ws / CONFIG_FILE), f"no {CONFIG_FILE} in {ws}"))
    else:
        try:
            cfg = load_config(ws)
        except ConfigError as err:
            report.problems.extend(Problem("config", str(err.path), text) for text in err.problems)
    settings = cfg.settings if cfg is not None else WorkspaceSettings()
    if cfg is None:
        report.notes.append(
            Note(
                None,
                f"{CONFIG_FILE} could not be read: checked the files under the default folder "
                f"{settings.ckpts_folder}/ only (a workspace.ckpts_folder setting is unknown until "
                "it is fixed)",
            )
        )
        orphans: list[str] = []
        names = all_folders(ws / settings.ckpts_folder)
    else:
        report.problems.extend(Problem("type", str(cfg.path), p) for p in scenario_problems(cfg, callables))
        orphans = find_orphans(ws, cfg)
        names = [*cfg.scenarios, *orphans]
        report.scenarios = len(cfg.scenarios)
    domains = set(cfg.domains) if cfg is not None else set()
    for name in names:
        store = store_of(ws, name, settings)
        problems, notes, checked = store.problems(verify=verify)
        report.ckpts += checked
        report.problems.extend(Problem(*p) for p in problems)
        report.problems.extend(record_problems(store, {p[1] for p in problems}, domains))
        report.notes.extend(Note(*n) for n in notes)
    for name in orphans:
        info = scenario_files(ws, name, settings)
        where = [
            str(p)
            for p in (ws / settings.ckpts_folder / name, ws / settings.logs_folder / name)
            if p.is_dir()
        ]
        report.problems.append(
            Problem(
                "orphan",
                where[0],
                f"folder of {name!r}, which is not a domain in {CONFIG_FILE} "
                f"({len(info.ckpts)} checkpoint(s), logs: {'yes' if info.logs else 'no'}); add "
                f"'{name}:' back to {CONFIG_FILE} or move " + " and ".join(rel(w) for w in where) + " away",
            )
        )
    return report


def record_problems(store: CheckpointStore, unreadable: set[str], domains: set[str]) -> list[Problem]:
    """Stamped checkpoints of ``store`` whose sucrose record names another scenario.

    Reads only each file's small pickle (:func:`~sucrose_lightning._peek.recorded_scenario`,
    no torch); files in ``unreadable`` (already reported) and files without a record are
    skipped. ``domains`` tells a renamed scenario (no longer a domain) from a copied file.

    Examples:
        >>> from sucrose_lightning.config import WorkspaceSettings
        >>> from sucrose_lightning.layout import Layout
        >>> store = CheckpointStore(Layout(ws, "base/case1", WorkspaceSettings()))
        >>> store.folder.mkdir(parents=True)
        >>> torch.save({"sucrose": {"format": 1, "scenario": "old"}}, store.layout.ckpt_path(1))
        >>> [(p.kind, p.extra) for p in record_problems(store, set(), {"base", "base/case1"})]
        [('record', {'scenario': 'base/case1', 'recorded': 'old'})]
    """
    name = store.layout.name
    found = []
    for ckpt in store.files():
        if ckpt.path in unreadable or _atomic.check_file(ckpt.path) is not None:
            continue
        recorded = recorded_scenario(ckpt.path)
        if recorded is None or recorded == name:
            continue
        if recorded in domains:
            fix = (
                f"copied from scenario {recorded!r}? resuming {name!r} from it warns that another "
                f"scenario wrote it; move it back to {recorded!r}'s folder or delete it"
            )
        else:
            fix = (
                f"renamed by hand, or an interrupted 'sucrose mv'? run 'sucrose mv {recorded} {name}' "
                "to rewrite the records (it finishes an interrupted rename)"
            )
        found.append(
            Problem(
                "record",
                ckpt.path,
                f"its record names scenario {recorded!r}, not {name!r} whose folder holds it; {fix}",
                {"scenario": name, "recorded": recorded},
            )
        )
    return found


def _json(report: CheckReport) -> dict[str, Any]:
    return {
        "ok": report.ok,
        "problems": [
            {"kind": p.kind, "path": p.path, "message": p.message, **p.extra} for p in report.problems
        ],
        "notes": [n.text() for n in report.notes],
        "checked": {"scenarios": report.scenarios, "ckpts": report.ckpts},
        "verify": report.verify,
    }


def render_check(report: CheckReport, fmt: str = "text") -> Output:
    """The report as text (``fmt="text"``) or JSON (``"json"``); exit code 1 when there is a problem.

    Examples:
        >>> out = render_check(CheckReport(scenarios=2, ckpts=5))
        >>> print(out.stdout(), end=""); out.code
        ok: 2 scenario(s), 5 checkpoint(s) checked, no problems
        0
    """
    out = Output(code=0 if report.ok else 1)
    if fmt == "json":
        out.out(to_json(_json(report)))
        return out
    for p in report.problems:
        # config problems already start with file:line:col
        out.out(p.message if p.kind in ("config", "type") else f"{rel(p.path)}: {p.message}")
    for note in report.notes:
        out.out(f"note: {note.text()}")
    what = f"{report.scenarios} scenario(s), {report.ckpts} checkpoint(s)"
    what += " (CRC-verified)" if report.verify else ""
    if report.ok:
        out.out(f"ok: {what} checked, no problems")
    else:
        out.out(f"{len(report.problems)} problem(s) found; checked {what}")
    return out
