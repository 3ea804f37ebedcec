"""``sucrose mv OLD NEW``: rename a scenario with its config key, folders, file names and records.

The steps, in this order, each one atomic: the domain's key in ``config.yaml`` (a text edit of
that one line, checked by parsing the result), the checkpoint folder, each stamped file's
stem (also in ``.abandoned/``), the logs folder, and last each checkpoint's record (which
needs torch, imported only then). Until the records are rewritten, ``sucrose check``
reports the files whose record names OLD; running the same ``sucrose mv OLD NEW`` again
finishes whatever an interrupted rename left (OLD no longer a domain, NEW one).

A scenario with child domains is refused: rename the children first (their folders lie
inside OLD's), so that no other scenario's inheritance changes behind the user's back.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .. import _atomic
from .._lock import LEASE_FILE, ScenarioLock, hostname, read_lease
from .._peek import recorded_scenario
from .._record import read_record
from ..config import Config, load_config
from ..errors import ConfigError, LockError
from ..layout import ABANDONED_FOLDER, LOCK_FILE, TEMP_NAME, Layout
from ..names import WORKSPACE_DOMAIN, check_domain_name
from ..store import CheckpointStore
from ..values import same_value
from .common import UsageError
from .render import Output, rel, to_json

__all__ = ["MoveResult", "Step", "move", "plan_move", "render_mv"]


@dataclass
class Step:
    """One change: ``kind`` is ``config``, ``folder``, ``file`` or ``record``.

    Paths are as they will be once the earlier steps are done.
    """

    kind: str
    src: str
    dst: str
    dst_file: str = ""  # the config file, for a ``config`` step

    def text(self, done: bool = True) -> str:
        """What the step does, in words.

        Examples:
            >>> Step("folder", "/ws/ckpts/a", "/ws/ckpts/b").text(done=False)
            'move /ws/ckpts/a -> /ws/ckpts/b'
        """
        verb = {"config": "rename key", "folder": "move", "file": "rename", "record": "rewrite record"}
        past = {"config": "renamed key", "folder": "moved", "file": "renamed", "record": "rewrote record"}
        word = (past if done else verb)[self.kind]
        if self.kind == "config":
            return f"{word} {self.src!r} -> {self.dst!r} in {rel(self.dst_file)}"
        if self.kind == "file":
            return f"{word} {rel(self.src)} -> {Path(self.dst).name}"
        if self.kind == "record":
            return f"{word} of {rel(self.src)} (scenario -> {self.dst!r})"
        return f"{word} {rel(self.src)} -> {rel(self.dst)}"


@dataclass
class MoveResult:
    """The plan and what happened: ``done`` steps, the ``failed`` one with its error, the rest ``left``."""

    old: str
    new: str
    steps: list[Step] = field(default_factory=list)
    dry_run: bool = True
    done: list[Step] = field(default_factory=list)
    failed: tuple[Step, str] | None = None
    left: list[Step] = field(default_factory=list)


class MoveRefused(UsageError):
    """The rename cannot start; nothing was changed."""


def _refuse(text: str) -> MoveRefused:
    return MoveRefused(f"cannot rename: {text}; nothing changed")


def plan_move(ws: Path, cfg: Config, old: str, new: str) -> list[Step]:
    """The steps renaming ``old`` to ``new`` takes from the workspace's state now.

    Raises:
        MoveRefused: a bad ``new``, ``old`` unknown, a name taken, or child domains.
    """
    for name, what in ((old, "old"), (new, "new")):
        bad = check_domain_name(name)
        if bad:
            raise _refuse(f"bad {what} name {name!r}: {bad}")
    if WORKSPACE_DOMAIN in (old, new):
        raise _refuse(f"{WORKSPACE_DOMAIN!r} holds layout settings and is not a scenario")
    if old == new:
        raise _refuse(f"{old!r} and {new!r} are the same name")
    if new.startswith(old + "/") or old.startswith(new + "/"):
        raise _refuse(f"{new!r} would lie inside {old!r}'s folders, or the other way round")
    s = cfg.settings
    folders = {
        k: (ws / f / old, ws / f / new) for k, f in (("ckpts", s.ckpts_folder), ("logs", s.logs_folder))
    }
    new_dirs = [dst for _, dst in folders.values() if dst.exists()]
    for name, what in ((old, "old"), (new, "new")):
        kids = [d for d in cfg.domains if d.startswith(name + "/")]
        if kids:
            raise _refuse(
                f"the {what} name {name!r} has child domains ({', '.join(kids)}); rename them first "
                "(their folders lie inside its folders and their inheritance would change)"
            )
    resume = old not in cfg.domains and new in cfg.domains
    if old in cfg.domains and new in cfg.domains:
        raise _refuse(f"{new!r} is already a domain in {rel(cfg.path)}")
    if old in cfg.domains and new_dirs:
        raise _refuse(f"{new!r} already has folders: {', '.join(rel(d) for d in new_dirs)}")
    if not resume and old not in cfg.domains:
        raise _refuse(f"{old!r} is not a domain in {rel(cfg.path)} ('sucrose ls' lists them)")
    clash = [dst for src, dst in folders.values() if src.is_dir() and dst.exists()]
    if clash:
        raise _refuse(f"both {rel(clash[0].parent / old)} and {rel(clash[0])} exist; merge them by hand")
    steps = [] if resume else [Step("config", old, new, str(cfg.path))]
    ck_old, ck_new = folders["ckpts"]
    if ck_old.is_dir():
        steps.append(Step("folder", str(ck_old), str(ck_new)))
    current = ck_old if ck_old.is_dir() else ck_new
    renames, records = _file_steps(Layout(ws, old, s), Layout(ws, new, s), current, old)
    steps += renames
    if folders["logs"][0].is_dir():
        steps.append(Step("folder", *map(str, folders["logs"])))
    steps += records
    if resume and not steps:
        raise _refuse(f"{old!r} is not a domain in {rel(cfg.path)} and nothing of it is left to rename")
    return steps


def _file_steps(old: Layout, new: Layout, current: Path, old_name: str) -> tuple[list[Step], list[Step]]:
    """File renames and record rewrites, with paths as they are once the folder has moved."""
    prefix = re.compile(re.escape(f"{old.stem}_{old.settings.epoch_prefix}") + r"\d")
    exts = {old.settings.ckpts_extension, old.settings.lightning_ckpts_extension}
    renames: list[Step] = []
    records: list[Step] = []
    for sub in ("", ABANDONED_FOLDER):
        here = current / sub if sub else current
        try:
            names = sorted(e.name for e in os.scandir(here) if e.is_file())
        except OSError:
            continue
        for name in names:
            if name == LOCK_FILE or TEMP_NAME.fullmatch(name):
                continue
            target = name
            stamped = any(old.parse_label(name, ext) for ext in exts) if not sub else bool(prefix.match(name))
            if stamped and old.stem != new.stem:
                target = new.stem + name[len(old.stem) :]
            final_dir = new.ckpts_dir / sub if sub else new.ckpts_dir
            if target != name:
                renames.append(Step("file", str(final_dir / name), str(final_dir / target)))
            if recorded_scenario(here / name) == old_name:
                records.append(Step("record", str(final_dir / target), new.name))
    return renames, records


def _rename_key(cfg: Config, old: str, new: str) -> None:
    """Replace the key ``old`` by ``new`` in ``config.yaml``; every other byte stays.

    The edited text goes to a temporary file (same mode, fsynced) that must parse to the same
    domains in the same order with only that name changed; then it replaces the file.
    """
    path = Path(cfg.path)
    raw = path.read_bytes()
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise _refuse(f"{rel(path)} is not UTF-8; rename the key by hand") from None
    try:
        root = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        root = None
    node = (
        next((k for k, _ in root.value if isinstance(k, yaml.ScalarNode) and k.value == old), None)
        if isinstance(root, yaml.MappingNode)
        else None
    )
    a, b = (node.start_mark.index, node.end_mark.index) if node is not None else (0, 0)
    if node is None or node.start_mark.line != node.end_mark.line or not _is_key(text[a:b], old):
        raise _refuse(f"cannot find the key {old!r} on one line of {rel(path)}; rename it by hand")
    edited = text[:a] + _key_text(new, node.style) + text[b:]
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        with open(tmp, "w", encoding="utf-8", newline="") as stream:
            stream.write(edited)
            stream.flush()
            os.fsync(stream.fileno())
        os.chmod(tmp, stat.S_IMODE(os.stat(path).st_mode))
        try:
            after = load_config(tmp)
        except ConfigError:
            after = None
        want = [(new if d == old else d, body) for d, body in cfg.domains.items()]
        if (
            after is None
            or [d for d, _ in want] != list(after.domains)
            or not all(same_value(body, after.domains[d]) for d, body in want)
        ):
            raise _refuse(f"editing the key {old!r} of {rel(path)} would change more; rename it by hand")
        os.replace(tmp, path)
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink()
    _atomic.fsync_dir(path.parent)


def _is_key(text: str, name: str) -> bool:
    """Whether ``text`` alone is the YAML key ``name`` (no anchor, tag or other token with it)."""
    try:
        return bool(yaml.safe_load(f"{text}: 0") == {name: 0})
    except yaml.YAMLError:
        return False


def _key_text(name: str, style: str | None) -> str:
    """``name`` as a YAML key in the original key's style (plain only when it stays a string)."""
    if style == "'":
        return "'" + name.replace("'", "''") + "'"
    if style is None:
        with contextlib.suppress(yaml.YAMLError):
            if re.fullmatch(r"\w[\w./-]*", name) and yaml.safe_load(f"{name}: 0") == {name: 0}:
                return name
    return json.dumps(name, ensure_ascii=False)


def _rewrite_record(path: str, new: str) -> None:
    """Load with torch (``weights_only=True``, devices kept), set the record's scenario, save atomically."""
    st = os.stat(path)
    data = _atomic.torch_load(path, {"map_location": None})
    record = read_record(data, path) if isinstance(data, dict) else None
    if record is None:
        raise ValueError("it holds no sucrose record")
    record["scenario"] = new
    _atomic.atomic_save(data, Path(path))
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))


def _run(step: Step, cfg: Config) -> None:
    if step.kind == "config":
        _rename_key(cfg, step.src, step.dst)
    elif step.kind == "record":
        _rewrite_record(step.src, step.dst)
    else:
        if os.path.exists(step.dst):
            raise FileExistsError(f"{step.dst} exists")
        _atomic.ensure_dir(Path(step.dst).parent)
        os.rename(step.src, step.dst)
        _atomic.fsync_dir(Path(step.dst).parent)


def move(ws: Path, old: str, new: str, *, dry_run: bool = False, cfg: Config | None = None) -> MoveResult:
    """Rename scenario ``old`` to ``new`` (or, with ``dry_run``, only plan), holding its lock.

    ``cfg`` is the workspace's parsed config (read from ``ws`` when omitted). An interrupted
    step (an error, Ctrl-C) ends the run: :attr:`MoveResult.failed` names it, and
    :attr:`MoveResult.done` and :attr:`MoveResult.left` what was and was not done.

    Raises:
        MoveRefused: nothing was changed (bad name, taken name, unknown scenario, child
            domains, a process training it).
    """
    cfg = load_config(ws) if cfg is None else cfg
    result = MoveResult(old, new, plan_move(ws, cfg, old, new), dry_run)
    if dry_run:
        return result
    locks: list[ScenarioLock] = []
    try:
        for name in (old, new):
            layout = Layout(ws, name, cfg.settings)
            if (name == old and old in cfg.domains) or layout.ckpts_dir.is_dir():
                try:
                    locks.append(CheckpointStore(layout).writer(cleanup=False))
                except LockError as err:
                    raise _refuse(str(err)) from None
        result.steps = plan_move(ws, cfg, old, new)  # under the lock (it may have made OLD's folder)
        for i, step in enumerate(result.steps):
            try:
                _run(step, cfg)
            except MoveRefused:
                raise  # only the config edit refuses, and it is the first step: nothing changed
            except (Exception, KeyboardInterrupt) as err:
                result.failed, result.left = (step, f"{type(err).__name__}: {err}"), result.steps[i + 1 :]
                break
            result.done.append(step)
    finally:
        for lock in locks:
            lock.release()
        _drop_moved_lease(Layout(ws, new, cfg.settings).ckpts_dir)
    return result


def _drop_moved_lease(folder: Path) -> None:
    """Remove the lease this process held on OLD, which moved into NEW's folder with it."""
    lease = folder / LEASE_FILE
    info = read_lease(lease)
    if info and info.get("pid") == os.getpid() and info.get("host") == hostname():
        with contextlib.suppress(OSError):
            lease.unlink()


def _entry(step: Step) -> dict[str, Any]:
    entry = {"kind": step.kind, "from": step.src, "to": step.dst}
    return {**entry, "file": step.dst_file} if step.kind == "config" else entry


def render_mv(result: MoveResult, fmt: str = "text") -> Output:
    """The plan or what was done; exit code 1 when a step failed.

    Examples:
        >>> r = MoveResult("a", "b", [Step("folder", "/ws/ckpts/a", "/ws/ckpts/b")])
        >>> print(render_mv(r).stdout(), end="")
        would move /ws/ckpts/a -> /ws/ckpts/b
        dry run: nothing changed; run again without --dry-run to rename 'a' to 'b'
    """
    out = Output(code=1 if result.failed else 0)
    if fmt == "json":
        data = {
            "old": result.old,
            "new": result.new,
            "dry_run": result.dry_run,
            "steps": [_entry(s) for s in result.steps],
            "done": [_entry(s) for s in result.done],
            "failed": None
            if result.failed is None
            else {**_entry(result.failed[0]), "error": result.failed[1]},
            "not_done": [_entry(s) for s in result.left],
        }
        out.out(to_json(data))
        return out
    if result.dry_run:
        for step in result.steps:
            out.out(f"would {step.text(done=False)}")
        out.out(
            f"dry run: nothing changed; run again without --dry-run to rename "
            f"{result.old!r} to {result.new!r}"
        )
        return out
    for step in result.done:
        out.out(step.text())
    if result.failed is None:
        out.out(f"renamed scenario {result.old!r} to {result.new!r} ({len(result.done)} change(s))")
        return out
    step, error = result.failed
    out.err(f"sucrose: error: could not {step.text(done=False)}: {error}")
    for left in result.left:
        out.err(f"sucrose: not done: {left.text(done=False)}")
    out.err(
        f"sucrose: the {len(result.done)} change(s) above were made; fix the cause and run "
        f"'sucrose mv {result.old} {result.new}' again to finish ('sucrose check' shows what is left)"
    )
    return out
