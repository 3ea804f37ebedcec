"""The ``sucrose`` command: see, compare, check, plot and prune a workspace's scenarios.

Subcommands (``sucrose -h`` and ``sucrose SUBCOMMAND -h`` for details)::

    sucrose ls                          tree of scenarios: epochs done, checkpoints, size, logs
    sucrose show SCENARIO [--prefix P]  merged config: value, origin domain, overridden values
    sucrose diff A B                    keys that differ, keys only in A, keys only in B
    sucrose check [--verify]            config problems, unreadable checkpoints, leftovers
    sucrose plot A [B ...] --tag TAG    one PNG comparing a TensorBoard scalar across scenarios
    sucrose scalars A [B ...] --tag TAG the same data as CSV or JSON
    sucrose prune SCENARIO --keep K     delete all but the newest K checkpoints (with --yes)

Exit codes: 0 fine, 1 a problem was found (``check``), the config file is broken or there was
nothing to plot, 2 a usage error (unknown scenario, bad option, missing workspace, missing
optional dependency). Errors are one clear message on stderr, never a traceback.

``ls``, ``show``, ``diff`` and ``check`` (without ``--verify``) import neither torch, lightning,
tensorboard nor matplotlib, so they start in a fraction of a second. Nothing here imports
torch at all: ``check --verify`` CRC-checks the zip archives with :mod:`zipfile`.
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
import math
import os
import re
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import storage
from .config import CONFIG_FILE, Config, WorkspaceSettings, load_config, plain, same_value
from .errors import ConfigError, LockError, SucroseError, did_you_mean
from .layout import TEMP_NAME, VERSION_DIR, CkptFile, Layout

if TYPE_CHECKING:  # pragma: no cover
    from matplotlib.figure import Figure

    from .tbreader import ScalarPoint

__all__ = [
    "PLOT_INSTALL_HINT",
    "ScenarioFiles",
    "UsageError",
    "build_parser",
    "find_orphans",
    "main",
    "plot_figure",
    "scenario_files",
]

PROG = "sucrose"
#: What ``sucrose plot`` says when matplotlib is not installed.
PLOT_INSTALL_HINT = (
    "sucrose plot needs matplotlib, which is not installed; "
    "install it with: pip install 'sucrose-lightning[plot]'"
)
# Folders a SummaryWriter makes inside a scenario's logs folder: add_hparams() names them by
# str(time.time()) (``1795702638.7153077``, always with a dot), Lightning's default logger
# ``version_<n>``. A removed child domain named like that is not reported as an orphan.
_WRITER_SUBDIR = re.compile(r"\d+\.\d+")


class UsageError(SucroseError):
    """The command cannot run as asked (unknown scenario, missing workspace, ...): exit code 2."""


# --------------------------------------------------------------------------- small helpers


def _human_size(n: int) -> str:
    """``1536`` -> ``'1.5 KiB'``.

    Examples:
        >>> _human_size(1536)
        '1.5 KiB'
        >>> _human_size(12)
        '12 B'
    """
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} B" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


def _rel(path: str | os.PathLike[str]) -> str:
    """``path`` relative to the current folder when it lies inside it (shorter messages), else as is."""
    text = os.fspath(path)
    with contextlib.suppress(ValueError):
        rel = os.path.relpath(text)
        if not rel.startswith(".."):
            return rel
    return text


def _local_time(ts: float | None) -> str:
    return "-" if ts is None else time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _iso_time(ts: float | None) -> str | None:
    return None if ts is None else time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(ts))


def _inline(value: Any) -> str:
    """A value as one line of YAML flow syntax (strings that look like numbers stay quoted)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        if isinstance(value, float) and not math.isfinite(value):
            return {math.inf: ".inf", -math.inf: "-.inf"}.get(value, ".nan")
        return repr(value)
    import yaml

    text = yaml.safe_dump(value, default_flow_style=True, width=math.inf, allow_unicode=True)
    text = text.strip()
    if text.endswith("\n..."):
        text = text[: -len("\n...")]
    elif text.endswith("..."):
        text = text[:-3].rstrip()
    return text


def _table(headers: Sequence[str], rows: Iterable[Sequence[str]], right: Iterable[int] = ()) -> str:
    """Align ``rows`` under ``headers``; columns listed in ``right`` are right-aligned."""
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


def _print_json(data: Any) -> None:
    print(json.dumps(_json_safe(data), indent=2, ensure_ascii=False, default=str, allow_nan=False))


# --------------------------------------------------------------------------- workspace


def _workspace(args: argparse.Namespace) -> Path:
    ws = Path(args.workspace).expanduser()
    if not ws.is_dir():
        raise UsageError(
            f"workspace {str(ws)!r} is not a folder; pass the folder holding {CONFIG_FILE} with -w"
        )
    return ws.absolute()


def _load(args: argparse.Namespace) -> tuple[Path, Config]:
    ws = _workspace(args)
    if not (ws / CONFIG_FILE).exists():
        raise UsageError(
            f"no {CONFIG_FILE} in {ws}; run sucrose in a workspace folder or pass it with -w/--workspace"
        )
    return ws, load_config(ws)


def _require(cfg: Config, name: str) -> None:
    if name in cfg.domains and name != "workspace":
        return
    if name == "workspace":
        raise UsageError(f"'workspace' in {cfg.path} holds layout settings and is not a scenario")
    hint = did_you_mean(name, cfg.scenarios)
    raise UsageError(
        f"unknown scenario {name!r}: not a domain in {_rel(cfg.path)}{hint} "
        f"('sucrose ls' lists all {len(cfg.scenarios)})"
    )


def _extensions(settings: WorkspaceSettings) -> list[str]:
    exts = [settings.ckpts_extension]
    if settings.lightning_ckpts_extension != settings.ckpts_extension:
        exts.append(settings.lightning_ckpts_extension)
    return exts


@dataclass
class ScenarioFiles:
    """What one scenario (or orphan) has on disk.

    Attributes:
        name: the scenario name (folder path under ``ckpts/`` and ``logs/``).
        ckpts: its stamped checkpoints of every extension, oldest first.
        sizes: path -> size in bytes.
        mtimes: path -> modification time.
        logs: whether its logs folder holds TensorBoard event files.
        unreadable_newer: how many checkpoints newer than :attr:`newest` fail the cheap
            :func:`~sucrose_lightning.storage.check_file` (a resumed run would skip them).
    """

    name: str
    ckpts: list[CkptFile] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)
    mtimes: dict[str, float] = field(default_factory=dict)
    logs: bool = False
    unreadable_newer: int = 0

    @property
    def newest(self) -> CkptFile | None:
        """The most advanced readable checkpoint (most epochs, then most steps): the epochs done."""
        index = len(self.ckpts) - 1 - self.unreadable_newer
        return self.ckpts[index] if index >= 0 else None

    @property
    def total_size(self) -> int:
        """Bytes of all its checkpoints."""
        return sum(self.sizes.values())

    @property
    def newest_time(self) -> float | None:
        """Modification time of its most recently written checkpoint."""
        return max(self.mtimes.values()) if self.mtimes else None

    def as_json(self) -> dict[str, Any]:
        """Plain data for ``--format json``."""
        newest = self.newest
        return {
            "name": self.name,
            "epochs": newest.epochs if newest else None,
            "step": newest.step if newest else None,
            "ckpts": len(self.ckpts),
            "size": self.total_size,
            "newest_time": _iso_time(self.newest_time),
            "logs": self.logs,
            "unreadable_newer": self.unreadable_newer,
        }


def scenario_files(workspace: Path, name: str, settings: WorkspaceSettings) -> ScenarioFiles:
    """Scan one scenario's checkpoint (``.pt`` and ``.ckpt``) and log folders; imports nothing heavy.

    Examples:
        >>> import tempfile
        >>> info = scenario_files(Path(tempfile.mkdtemp()), "base", WorkspaceSettings())
        >>> info.ckpts, info.logs
        ([], False)
    """
    from .tbreader import has_events

    layout = Layout(workspace, name, settings)
    info = ScenarioFiles(name)
    for ext in _extensions(settings):
        for ckpt in layout.scan(ext):
            try:
                st = os.stat(ckpt.path)
            except OSError:
                continue
            info.ckpts.append(ckpt)
            info.sizes[ckpt.path] = st.st_size
            info.mtimes[ckpt.path] = st.st_mtime
    info.ckpts.sort(key=lambda c: (c.order, c.path))
    for ckpt in reversed(info.ckpts):  # usually one cheap zip-directory read per scenario
        if storage.check_file(ckpt.path) is None:
            break
        info.unreadable_newer += 1
    info.logs = has_events(layout.logs_dir)
    return info


def find_orphans(workspace: Path, cfg: Config) -> list[str]:
    """Folders under ``ckpts/`` or ``logs/`` that hold files but match no domain of the config.

    Folders starting with ``.`` (sucrose's own, like ``.abandoned``) are skipped, and so
    are Lightning's ``version_<n>`` folders inside a scenario's logs folder.

    Examples:
        >>> import tempfile
        >>> ws = Path(tempfile.mkdtemp())
        >>> (ws / "ckpts" / "old").mkdir(parents=True)
        >>> _ = (ws / "ckpts" / "old" / "old_e1.pt").write_bytes(b"")
        >>> find_orphans(ws, Config(ws / "config.yaml", {"base": {}}))
        ['old']
    """
    names = set(cfg.scenarios)
    found: set[str] = set()
    for folder in {cfg.settings.ckpts_folder, cfg.settings.logs_folder}:
        root = workspace / folder
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames[:] = [d for d in dirnames if not d.startswith(".")]
            rel = Path(dirpath).relative_to(root).as_posix()
            if rel == "." or rel in names:
                continue
            parent, _, last = rel.rpartition("/")
            if (
                folder == cfg.settings.logs_folder
                and parent in names
                and (VERSION_DIR.fullmatch(last) or _WRITER_SUBDIR.fullmatch(last))
            ):
                continue  # a writer's sub-folder of a known scenario's logs (version_0, add_hparams)
            if any(not f.startswith(".") for f in filenames):
                found.add(rel)
    return sorted(found)


def _folders(root: Path) -> list[str]:
    """Every folder under ``root`` (relative, ``/``-separated), skipping sucrose's dot-folders."""
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root).as_posix()
        if rel != ".":
            out.append(rel)
    return out


def _tree(cfg: Config) -> list[tuple[str, int]]:
    """Scenarios in tree order (children right after their parent, else file order) with depth."""
    children: dict[str | None, list[str]] = {}
    for name in cfg.scenarios:
        children.setdefault(cfg.nearest_ancestor(name), []).append(name)
    out: list[tuple[str, int]] = []

    def visit(name: str, depth: int) -> None:
        out.append((name, depth))
        for child in children.get(name, []):
            visit(child, depth + 1)

    for root in children.get(None, []):
        visit(root, 0)
    return out


# --------------------------------------------------------------------------- ls


def cmd_ls(args: argparse.Namespace) -> int:
    """``sucrose ls``: the scenario tree with what each has on disk."""
    ws, cfg = _load(args)
    tree = _tree(cfg)
    infos = {name: scenario_files(ws, name, cfg.settings) for name, _ in tree}
    orphans = [scenario_files(ws, name, cfg.settings) for name in find_orphans(ws, cfg)]
    if args.format == "json":
        _print_json(
            {
                "workspace": str(ws),
                "config": str(cfg.path),
                "scenarios": [
                    {**infos[name].as_json(), "depth": depth, "parent": cfg.nearest_ancestor(name)}
                    for name, depth in tree
                ],
                "orphans": [o.as_json() for o in orphans],
            }
        )
        return 0

    def row(label: str, info: ScenarioFiles) -> list[str]:
        newest = info.newest
        epochs = (
            "-"
            if newest is None
            else str(newest.epochs) + ("" if newest.step is None else f" s{newest.step}")
        )
        if info.unreadable_newer:
            epochs += " *"
        return [
            label,
            epochs,
            str(len(info.ckpts)),
            _human_size(info.total_size) if info.ckpts else "-",
            _local_time(info.newest_time),
            "yes" if info.logs else "no",
        ]

    headers = ["SCENARIO", "EPOCHS", "CKPTS", "SIZE", "NEWEST", "LOGS"]
    if not tree:
        print(f"no scenarios in {cfg.path}; add a domain such as 'base:'")
    else:
        print(_table(headers, [row("  " * d + n, infos[n]) for n, d in tree], right=(1, 2, 3)))
    if any(i.unreadable_newer for i in [*infos.values(), *orphans]):
        print("\n* newer checkpoint(s) cannot be read (partial or corrupt); 'sucrose check' lists them")
    if orphans:
        print()
        print(f"orphans (files but no domain in {CONFIG_FILE}):")
        print(_table(headers, [row(o.name, o) for o in orphans], right=(1, 2, 3)))
    return 0


# --------------------------------------------------------------------------- show


def _show_rows(cfg: Config, name: str, prefix: str | None) -> list[dict[str, Any]]:
    values, origins = cfg.merged(name)
    chain = cfg.chain(name)
    head = None if prefix is None else prefix.rstrip(".") + "."
    rows = []
    for key, value in values.items():
        if head is not None and not (key.startswith(head) or key == head[:-1]):
            continue
        origin = origins[key]
        after = chain[chain.index(origin) + 1 :]
        overrides = [{"domain": d, "value": cfg.domains[d][key]} for d in after if key in cfg.domains[d]]
        rows.append({"key": key, "value": value, "origin": origin, "overrides": overrides})
    return rows


def cmd_show(args: argparse.Namespace) -> int:
    """``sucrose show``: the merged config of one scenario and where each value came from."""
    _, cfg = _load(args)
    name = args.scenario
    _require(cfg, name)
    rows = _show_rows(cfg, name, args.prefix)
    chain = cfg.chain(name)
    if args.prefix is not None and not rows:
        keys = sorted({k.split(".", 1)[0] for k in cfg.merged(name)[0]})
        print(
            f"{PROG}: no keys under prefix {args.prefix!r} in scenario {name!r}"
            f"{did_you_mean(args.prefix.rstrip('.'), keys)}",
            file=sys.stderr,
        )
        if args.format == "table":
            return 1
    if args.format == "json":
        _print_json(
            {
                "scenario": name,
                "chain": list(chain),
                "config": {r["key"]: plain(r["value"]) for r in rows},
                "keys": [
                    {
                        "key": r["key"],
                        "value": plain(r["value"]),
                        "origin": r["origin"],
                        "overrides": [
                            {"domain": o["domain"], "value": plain(o["value"])} for o in r["overrides"]
                        ],
                    }
                    for r in rows
                ],
            }
        )
    elif args.format == "yaml":
        print(_show_yaml(name, chain, rows, args.origin), end="")
    else:
        if args.origin:
            print(f"{name}: chain {' -> '.join(chain)}")
        table = [
            [
                r["key"],
                _inline(r["value"]),
                r["origin"],
                ", ".join(f"{o['domain']}: {_inline(o['value'])}" for o in r["overrides"]),
            ]
            for r in rows
        ]
        print(_table(["KEY", "VALUE", "FROM", "OVERRIDES"], table))
    return 0 if rows or args.prefix is None else 1


def _show_yaml(name: str, chain: Sequence[str], rows: list[dict[str, Any]], origin: bool) -> str:
    """The merged config as one YAML domain; with ``origin``, comments say where each key came from."""
    import yaml

    def dump(data: Any) -> str:
        return yaml.safe_dump(data, default_flow_style=False, sort_keys=False, allow_unicode=True, width=100)

    if not origin:
        return dump({name: {r["key"]: r["value"] for r in rows}})
    out = [f"# scenario {name}: chain {' -> '.join(chain)}"]
    if not rows:
        out.append(f"{dump({name: {}}).rstrip()}")
        return "\n".join(out) + "\n"
    out.append(dump({name: 0}).rstrip()[: -len(" 0")])  # the domain line, quoted as YAML needs
    for r in rows:
        note = f"from {r['origin']}"
        if r["overrides"]:
            note += "; overrides " + ", ".join(
                f"{o['domain']}: {_inline(o['value'])}" for o in r["overrides"]
            )
        out.append(f"  # {note}")
        out.extend("  " + line for line in dump({r["key"]: r["value"]}).rstrip("\n").split("\n"))
    return "\n".join(out) + "\n"


# --------------------------------------------------------------------------- diff


def cmd_diff(args: argparse.Namespace) -> int:
    """``sucrose diff A B``: how two scenarios' merged configs differ."""
    _, cfg = _load(args)
    a, b = args.a, args.b
    _require(cfg, a)
    _require(cfg, b)
    va, oa = cfg.merged(a)
    vb, ob = cfg.merged(b)
    differ = [k for k in va if k in vb and not same_value(va[k], vb[k])]
    only_a = [k for k in va if k not in vb]
    only_b = [k for k in vb if k not in va]
    if args.format == "json":
        _print_json(
            {
                "a": a,
                "b": b,
                "differ": [
                    {"key": k, "a": plain(va[k]), "b": plain(vb[k]), "a_origin": oa[k], "b_origin": ob[k]}
                    for k in differ
                ],
                "only_a": {k: plain(va[k]) for k in only_a},
                "only_b": {k: plain(vb[k]) for k in only_b},
                "same": sum(1 for k in va if k in vb) - len(differ),
            }
        )
        return 0
    if not (differ or only_a or only_b):
        print(f"{a} and {b} have the same config ({len(va)} keys)")
        return 0
    rows = [[k, _inline(va[k]), _inline(vb[k])] for k in differ]
    rows += [[k, _inline(va[k]), "(unset)"] for k in only_a]
    rows += [[k, "(unset)", _inline(vb[k])] for k in only_b]
    print(_table(["KEY", a, b], rows))
    same = sum(1 for k in va if k in vb) - len(differ)
    print(f"\n{len(differ)} differ, {len(only_a)} only in {a}, {len(only_b)} only in {b}, {same} the same")
    return 0


# --------------------------------------------------------------------------- check


def _pid_alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:  # pragma: no cover - e.g. platforms without signals
        return False
    return True


def _save_in_progress(tmp: Path) -> bool:
    """Whether a temporary checkpoint file belongs to a process that is still running here."""
    match = TEMP_NAME.fullmatch(tmp.name)
    return match is not None and _pid_alive(int(match.group(2)))


def cmd_check(args: argparse.Namespace) -> int:
    """``sucrose check``: list every problem of the workspace; exit 1 when there is any."""
    ws = _workspace(args)
    problems: list[dict[str, str]] = []
    notes: list[str] = []
    counts = {"scenarios": 0, "ckpts": 0}

    def problem(kind: str, path: str | Path, message: str) -> None:
        problems.append({"kind": kind, "path": str(path), "message": message})

    cfg: Config | None = None
    if not (ws / CONFIG_FILE).exists():
        problem("config", ws / CONFIG_FILE, f"no {CONFIG_FILE} in {ws}")
    else:
        try:
            cfg = load_config(ws)
        except ConfigError as err:
            for text in err.problems:
                problem("config", err.path, text)
    # With a broken config.yaml the files are still checked, in every folder under the
    # default checkpoint folder (the layout settings and the domains are unknown then).
    settings = cfg.settings if cfg is not None else WorkspaceSettings()
    if cfg is None:
        notes.append(
            f"{CONFIG_FILE} could not be read: checked the files under the default folder "
            f"{settings.ckpts_folder}/ only (a workspace.ckpts_folder setting is unknown until it is fixed)"
        )
    orphans = find_orphans(ws, cfg) if cfg is not None else []
    names = [*cfg.scenarios, *orphans] if cfg is not None else _folders(ws / settings.ckpts_folder)
    counts["scenarios"] = len(cfg.scenarios) if cfg is not None else 0
    for name in names:
        layout = Layout(ws, name, settings)
        for ext in _extensions(settings):
            for ckpt in layout.scan(ext):
                counts["ckpts"] += 1
                reason = storage.check_file(ckpt.path, verify=args.verify)
                if reason is not None:
                    problem("ckpt", ckpt.path, f"unreadable checkpoint: {reason}")
        for tmp in sorted(layout.temp_files()):
            if _save_in_progress(tmp):
                notes.append(f"{_rel(tmp)}: a save in progress (its process is running)")
            else:
                problem(
                    "temp",
                    tmp,
                    "leftover temporary file of an interrupted save; the next run of "
                    f"{name!r} removes it, or delete it",
                )
    for name in orphans:
        info = scenario_files(ws, name, settings)
        where = [
            str(p)
            for p in (ws / settings.ckpts_folder / name, ws / settings.logs_folder / name)
            if p.is_dir()
        ]
        problem(
            "orphan",
            where[0],
            f"folder of {name!r}, which is not a domain in {CONFIG_FILE} "
            f"({len(info.ckpts)} checkpoint(s), logs: {'yes' if info.logs else 'no'}); add "
            f"'{name}:' back to {CONFIG_FILE} or move " + " and ".join(_rel(w) for w in where) + " away",
        )
    ok = not problems
    if args.format == "json":
        _print_json(
            {"ok": ok, "problems": problems, "notes": notes, "checked": counts, "verify": args.verify}
        )
    else:
        for p in problems:
            text = p["message"]
            # config problems already start with file:line:col
            print(text if p["kind"] == "config" else f"{_rel(p['path'])}: {text}")
        for note in notes:
            print(f"note: {note}")
        what = f"{counts['scenarios']} scenario(s), {counts['ckpts']} checkpoint(s)"
        what += " (CRC-verified)" if args.verify else ""
        if ok:
            print(f"ok: {what} checked, no problems")
        else:
            print(f"{len(problems)} problem(s) found; checked {what}")
    return 0 if ok else 1


# --------------------------------------------------------------------------- scalars and plot


def _read_all(
    ws: Path, cfg: Config, names: Sequence[str], tag: str | None
) -> dict[str, dict[str, list[ScalarPoint]]]:
    try:
        from .tbreader import read_scalars
    except ImportError as err:  # pragma: no cover - tensorboard is a dependency
        raise UsageError(f"reading logs needs tensorboard: pip install tensorboard ({err})") from None
    out = {}
    for name in names:
        layout = Layout(ws, name, cfg.settings)
        out[name] = read_scalars(layout.logs_dir, None if tag is None else [tag])
    return out


def _collect(args: argparse.Namespace) -> tuple[Path, Config, dict[str, dict[str, list[ScalarPoint]]]]:
    ws, cfg = _load(args)
    for name in args.scenarios:
        _require(cfg, name)
    tag = None if args.list_tags else args.tag
    return ws, cfg, _read_all(ws, cfg, args.scenarios, tag)


def _list_tags(cfg: Config, ws: Path, data: dict[str, dict[str, list[ScalarPoint]]], fmt: str) -> int:
    tags = sorted({t for series in data.values() for t in series})
    if fmt == "json":
        _print_json({name: {t: len(p) for t, p in series.items()} for name, series in data.items()})
        return 0
    for name, series in data.items():
        if not series:
            layout = Layout(ws, name, cfg.settings)
            print(f"{PROG}: scenario {name!r} has no scalars in {_rel(layout.logs_dir)}", file=sys.stderr)
    if not tags:
        return 1
    rows = [[t, *(str(len(data[n].get(t, []))) for n in data)] for t in tags]
    print(_table(["TAG", *data], rows, right=range(1, len(data) + 1)))
    return 0


def _missing_report(
    ws: Path, cfg: Config, data: dict[str, dict[str, list[ScalarPoint]]], tag: str
) -> list[str]:
    """Warn (stderr) about scenarios without ``tag``; return the names that have it."""
    have = [n for n, series in data.items() if series.get(tag)]
    for name, series in data.items():
        if series.get(tag):
            continue
        layout = Layout(ws, name, cfg.settings)
        from .tbreader import read_scalars

        known = list(read_scalars(layout.logs_dir))
        if not known:
            print(f"{PROG}: scenario {name!r} has no scalars in {_rel(layout.logs_dir)}", file=sys.stderr)
        else:
            print(
                f"{PROG}: scenario {name!r} has no scalar {tag!r}{did_you_mean(tag, known)} "
                f"('--list-tags' shows its {len(known)} tags)",
                file=sys.stderr,
            )
    return have


def cmd_scalars(args: argparse.Namespace) -> int:
    """``sucrose scalars``: print one scalar of each scenario's logs as CSV or JSON."""
    ws, cfg, data = _collect(args)
    if args.list_tags:
        return _list_tags(cfg, ws, data, "json" if args.format == "json" else "table")
    have = _missing_report(ws, cfg, data, args.tag)
    if args.format == "json":
        _print_json(
            {
                "tag": args.tag,
                "series": {
                    n: [
                        {"step": p.step, "wall_time": p.wall_time, "value": p.value}
                        for p in data[n][args.tag]
                    ]
                    for n in have
                },
            }
        )
    else:
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["scenario", "step", "wall_time", "value"])
        for n in have:
            for p in data[n][args.tag]:
                writer.writerow([n, p.step, f"{p.wall_time:.3f}", repr(p.value)])
        print(buffer.getvalue(), end="")
    return 0 if have else 1


def plot_figure(series: dict[str, Sequence[ScalarPoint]], tag: str) -> Figure:
    """One matplotlib figure: ``tag`` against step, one labelled line per scenario.

    Uses ``matplotlib.figure.Figure`` directly (no pyplot, no GUI backend, no global state).

    Args:
        series: scenario name -> its points, in the order the lines are drawn.
        tag: the scalar's tag (the y label and title).

    Returns:
        The figure; ``fig.axes[0].get_lines()`` has one line per scenario.

    Raises:
        ImportError: matplotlib is not installed.

    Examples:
        >>> from sucrose_lightning.tbreader import ScalarPoint
        >>> fig = plot_figure({"base": [ScalarPoint(0, 0.0, 1.0), ScalarPoint(1, 1.0, 0.5)]}, "loss")
        >>> [line.get_label() for line in fig.axes[0].get_lines()]
        ['base']
    """
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    fig = Figure(figsize=(8, 4.5), dpi=100, layout="constrained")
    ax = fig.add_subplot()
    for name, points in series.items():
        marker = "o" if len(points) < 30 else None
        ax.plot([p.step for p in points], [p.value for p in points], label=name, marker=marker, markersize=3)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("step")
    ax.set_ylabel(tag)
    ax.set_title(tag)
    ax.grid(True, alpha=0.3)
    ax.legend()
    return fig


def _default_png(tag: str) -> str:
    """``train/loss`` -> ``train_loss.png``; a tag with nothing usable gives ``plot.png``."""
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", tag).strip("_.")
    return f"{stem}.png" if stem else "plot.png"


def cmd_plot(args: argparse.Namespace) -> int:
    """``sucrose plot``: draw one scalar of several scenarios into one PNG."""
    if not args.list_tags:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            print(f"{PROG}: {PLOT_INSTALL_HINT}", file=sys.stderr)
            return 2
    ws, cfg, data = _collect(args)
    if args.list_tags:
        return _list_tags(cfg, ws, data, args.format)
    have = _missing_report(ws, cfg, data, args.tag)
    if not have:
        print(f"{PROG}: nothing to plot: no scenario has the scalar {args.tag!r}", file=sys.stderr)
        return 1
    output = Path(args.output or _default_png(args.tag))
    fig = plot_figure({n: data[n][args.tag] for n in have}, args.tag)
    try:
        fig.savefig(output, format="png")
    except OSError as err:
        raise UsageError(f"cannot write {output}: {err.strerror or err}") from None
    if args.format == "json":
        _print_json(
            {
                "output": str(output.absolute()),
                "tag": args.tag,
                "lines": [{"scenario": n, "points": len(data[n][args.tag])} for n in have],
            }
        )
    else:
        print(
            f"wrote {_rel(output)} ({args.tag}: "
            + ", ".join(f"{n} {len(data[n][args.tag])} points" for n in have)
            + ")"
        )
    return 0


# --------------------------------------------------------------------------- prune


def cmd_prune(args: argparse.Namespace) -> int:
    """``sucrose prune``: delete all but the newest K checkpoints of each extension (with ``--yes``)."""
    ws, cfg = _load(args)
    name = args.scenario
    _require(cfg, name)
    layout = Layout(ws, name, cfg.settings)
    delete: list[CkptFile] = []
    keep: list[CkptFile] = []
    unreadable: list[CkptFile] = []
    for ext in _extensions(cfg.settings):
        readable = []
        for ckpt in layout.scan(ext):
            if storage.check_file(ckpt.path) is None:
                readable.append(ckpt)
            else:
                unreadable.append(ckpt)
        cut = max(len(readable) - args.keep, 0)
        delete.extend(readable[:cut])
        keep.extend(readable[cut:])
    sizes = {}
    for ckpt in [*delete, *keep, *unreadable]:
        with contextlib.suppress(OSError):
            sizes[ckpt.path] = os.path.getsize(ckpt.path)
    freed = sum(sizes.get(c.path, 0) for c in delete)
    deleted: list[str] = []
    failed: list[str] = []
    if args.yes and delete:
        # Hold the scenario's lock while deleting: a run that is training it keeps its own
        # bookkeeping of these files (Lightning's best-k, keep_last), and none may start meanwhile.
        lock = storage.ScenarioLock(layout)
        try:
            lock.acquire()
        except LockError as err:
            if not args.force:
                raise UsageError(f"{err}; nothing deleted (pass --force to delete anyway)") from None
        try:
            for ckpt in delete:
                try:
                    os.remove(ckpt.path)
                    deleted.append(ckpt.path)
                except FileNotFoundError:
                    deleted.append(ckpt.path)  # already gone: what was asked is true
                except OSError as err:
                    failed.append(f"{ckpt.path}: {err.strerror or err}")
        finally:
            lock.release()

    def entry(c: CkptFile) -> dict[str, Any]:
        return {"path": c.path, "epochs": c.epochs, "step": c.step, "size": sizes.get(c.path)}

    if args.format == "json":
        _print_json(
            {
                "scenario": name,
                "keep": args.keep,
                "dry_run": not args.yes,
                "delete": [entry(c) for c in delete],
                "kept": [entry(c) for c in keep],
                "unreadable": [entry(c) for c in unreadable],
                "freed": freed if args.yes else 0,
                "failed": failed,
            }
        )
    else:
        for c in unreadable:
            note = f"{PROG}: leaving unreadable {_rel(c.path)} alone ('sucrose check' reports it)"
            print(note, file=sys.stderr)
        if not delete:
            print(
                f"nothing to prune: {name!r} has {len(keep)} checkpoint(s) per kind, "
                f"keeping up to {args.keep}"
            )
        else:
            verb = "deleted" if args.yes else "would delete"
            rows = [
                [
                    Path(c.path).name,
                    str(c.epochs),
                    "-" if c.step is None else str(c.step),
                    _human_size(sizes.get(c.path, 0)),
                ]
                for c in delete
            ]
            print(_table(["FILE", "EPOCHS", "STEP", "SIZE"], rows, right=(1, 2, 3)))
            print(
                f"\n{verb} {len(delete)} file(s) ({_human_size(freed)}) in {_rel(layout.ckpts_dir)}"
                + (
                    f"; kept {len(keep)} (the newest {args.keep} of each kind)"
                    if args.yes
                    else f" and keep {len(keep)} (the newest {args.keep} of each kind); "
                    "run again with --yes to delete them"
                )
            )
        for text in failed:
            print(f"{PROG}: could not delete {text}", file=sys.stderr)
    return 1 if failed else 0


# --------------------------------------------------------------------------- parser


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, not {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value} (keep the newest checkpoint)")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The ``sucrose`` argument parser (each subcommand sets ``func``).

    Examples:
        >>> args = build_parser().parse_args(["show", "base", "--format", "yaml"])
        >>> args.scenario, args.format
        ('base', 'yaml')
    """
    workspace = argparse.ArgumentParser(add_help=False)
    workspace.add_argument(
        "-w",
        "--workspace",
        default=argparse.SUPPRESS,
        help="the folder holding config.yaml (default: the current folder)",
    )
    parser = argparse.ArgumentParser(
        prog=PROG,
        description="See, compare, check, plot and prune the scenarios of a sucrose workspace.",
        epilog="exit codes: 0 fine, 1 problem found, 2 usage error. "
        "'sucrose SUBCOMMAND -h' shows each subcommand's options.",
    )
    parser.add_argument(
        "-w", "--workspace", default=".", help="the folder holding config.yaml (default: the current folder)"
    )
    parser.add_argument("-V", "--version", action="store_true", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="SUBCOMMAND")

    def add(name: str, func: Callable[[argparse.Namespace], int], help_: str, formats: Sequence[str]) -> Any:
        p = sub.add_parser(name, parents=[workspace], help=help_, description=help_)
        p.add_argument(
            "--format", choices=formats, default=formats[0], help=f"output format (default: {formats[0]})"
        )
        p.set_defaults(func=func)
        return p

    add(
        "ls",
        cmd_ls,
        "tree of scenarios: epochs done, checkpoints, size, newest, logs; and orphans",
        ["table", "json"],
    )

    p = add(
        "show",
        cmd_show,
        "a scenario's merged config: each value, the domain it came from, the ancestor values it overrides",
        ["table", "yaml", "json"],
    )
    p.add_argument("scenario", help="scenario (domain) name, e.g. base/case1")
    p.add_argument("--prefix", help="only keys under this dotted prefix, e.g. model")
    p.add_argument(
        "--origin",
        action="store_true",
        help="show the inheritance chain (and, in YAML, a comment per key saying where it came from)",
    )

    p = add(
        "diff",
        cmd_diff,
        "keys whose values differ between two scenarios, keys only in one",
        ["table", "json"],
    )
    p.add_argument("a", help="first scenario")
    p.add_argument("b", help="second scenario")

    p = add(
        "check",
        cmd_check,
        "every problem at once: config.yaml, unreadable or partial checkpoints, "
        "leftover temporary files, folders with no domain; exit 1 if any",
        ["text", "json"],
    )
    p.add_argument("--verify", action="store_true", help="also read every byte and check CRCs (slow)")

    for name, func, help_, formats in (
        (
            "plot",
            cmd_plot,
            "draw a TensorBoard scalar of one or more scenarios into one PNG",
            ["text", "json"],
        ),
        ("scalars", cmd_scalars, "print a TensorBoard scalar of one or more scenarios", ["csv", "json"]),
    ):
        p = add(name, func, help_, formats)
        p.add_argument("scenarios", nargs="+", metavar="SCENARIO", help="scenario names")
        p.add_argument("--tag", help="the scalar's tag, e.g. train/loss")
        p.add_argument("--list-tags", action="store_true", help="list the scalar tags of each scenario")
        if name == "plot":
            p.add_argument(
                "-o", "--output", help="PNG file to write (default: <tag>.png in the current folder)"
            )

    p = add(
        "prune",
        cmd_prune,
        "delete all but the newest K checkpoints (.pt and .ckpt each); only lists them unless --yes",
        ["table", "json"],
    )
    p.add_argument("scenario", help="scenario name")
    p.add_argument(
        "--keep",
        type=_positive_int,
        required=True,
        metavar="K",
        help="how many of the newest readable checkpoints of each kind to keep (at least 1)",
    )
    p.add_argument("--yes", action="store_true", help="really delete (default: only list)")
    p.add_argument(
        "--force",
        action="store_true",
        help="delete even while a process is training the scenario (its lock is held)",
    )
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``sucrose`` command; returns the exit code.

    Args:
        argv: the arguments (default: ``sys.argv[1:]``).

    Returns:
        0 fine, 1 a problem found, 2 a usage error.

    Examples:
        >>> # main(["-w", "path/to/workspace", "show", "base/case1", "--format", "yaml"])
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as stop:  # argparse: usage errors exit 2, -h exits 0
        return int(stop.code or 0)
    if args.version:
        from . import __version__

        print(f"{PROG} {__version__}")
        return 0
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    if getattr(args, "list_tags", False) is False and args.command in ("plot", "scalars") and not args.tag:
        print(
            f"{PROG} {args.command}: error: --tag is required (or --list-tags to see them)", file=sys.stderr
        )
        return 2
    try:
        return int(args.func(args))
    except UsageError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 2
    except ConfigError as err:
        print(
            f"{PROG}: error: {err}\n(run 'sucrose check' for every problem of the workspace)", file=sys.stderr
        )
        return 1
    except SucroseError as err:
        print(f"{PROG}: error: {err}", file=sys.stderr)
        return 1
    except BrokenPipeError:  # e.g. `sucrose ls | head`
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
