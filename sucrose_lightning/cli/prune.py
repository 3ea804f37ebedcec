"""``sucrose prune SCENARIO --keep K``: delete all but the newest K checkpoints of each kind.

Which files go is :meth:`~sucrose_lightning.store.CheckpointStore.retention`'s rule (the same
one ``keep_last`` uses; unreadable files are never deleted); this module plans, asks for
``--yes``, deletes under the scenario's lock, and prints.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .._lock import ScenarioLock
from ..errors import LockError
from ..layout import CkptFile
from ..store import CheckpointStore
from .common import PROG, UsageError
from .render import Output, human_size, rel, table, to_json

__all__ = ["PrunePlan", "PruneResult", "prune", "prune_plan", "render_prune"]


@dataclass
class PrunePlan:
    """What pruning one scenario would delete and keep (each list oldest first, per kind).

    Attributes:
        scenario: the scenario's name.
        keep: how many of the newest readable checkpoints of each kind are kept.
        folder: its checkpoint folder.
        delete: the files to delete.
        kept: the files kept.
        unreadable: files that fail the integrity check: left alone, never counted.
        sizes: path -> size in bytes (missing when the file could not be read).
    """

    scenario: str
    keep: int
    folder: Path
    delete: list[CkptFile] = field(default_factory=list)
    kept: list[CkptFile] = field(default_factory=list)
    unreadable: list[CkptFile] = field(default_factory=list)
    sizes: dict[str, int] = field(default_factory=dict)

    @property
    def freed(self) -> int:
        """Bytes the deletion frees."""
        return sum(self.sizes.get(c.path, 0) for c in self.delete)


@dataclass
class PruneResult:
    """The plan and what was done: nothing on a dry run, else the deleted and failed files.

    Attributes:
        plan: what was to be deleted.
        dry_run: ``True`` when nothing was to be deleted (no ``--yes``).
        deleted: paths deleted (or already gone).
        failed: ``"path: reason"`` of each file that could not be deleted.
    """

    plan: PrunePlan
    dry_run: bool = True
    deleted: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


def prune_plan(store: CheckpointStore, keep: int) -> PrunePlan:
    """Which checkpoints of ``store`` go when keeping the newest ``keep`` readable ones of each kind.

    Examples:
        >>> import tempfile
        >>> from sucrose_lightning.config import WorkspaceSettings
        >>> from sucrose_lightning.inventory import store_of
        >>> plan = prune_plan(store_of(Path(tempfile.mkdtemp()), "base", WorkspaceSettings()), keep=1)
        >>> plan.delete, plan.kept, plan.freed
        ([], [], 0)
    """
    retention = store.retention(keep)
    plan = PrunePlan(
        store.layout.name, keep, store.folder, retention.delete, retention.keep, retention.unreadable
    )
    for ckpt in [*plan.delete, *plan.kept, *plan.unreadable]:
        with contextlib.suppress(OSError):
            plan.sizes[ckpt.path] = os.path.getsize(ckpt.path)
    return plan


def prune(store: CheckpointStore, keep: int, *, yes: bool = False, force: bool = False) -> PruneResult:
    """Plan, and with ``yes`` delete, holding the scenario's lock.

    A run that is training the scenario keeps its own bookkeeping of these files (Lightning's
    best-k, ``keep_last``), and none may start meanwhile, so the lock is held while deleting.

    Args:
        store: the scenario's checkpoint folder.
        keep: how many of the newest readable checkpoints of each kind to keep.
        yes: really delete (else only plan).
        force: delete even while another process holds the lock.

    Raises:
        UsageError: another process trains the scenario and ``force`` is not set; nothing deleted.
    """
    plan = prune_plan(store, keep)
    result = PruneResult(plan, dry_run=not yes)
    if not (yes and plan.delete):
        return result
    # Temporary files of interrupted saves stay: prune leaves them to the next run and to
    # 'sucrose check'.
    lock: ScenarioLock | None = None
    try:
        lock = store.writer(cleanup=False)
    except LockError as err:
        if not force:
            raise UsageError(f"{err}; nothing deleted (pass --force to delete anyway)") from None
    try:
        result.deleted, result.failed = store.delete(plan.delete)
    finally:
        if lock is not None:
            lock.release()
    return result


def _entry(plan: PrunePlan, c: CkptFile) -> dict[str, Any]:
    return {"path": c.path, "epochs": c.epochs, "step": c.step, "size": plan.sizes.get(c.path)}


def render_prune(result: PruneResult, fmt: str = "table") -> Output:
    """The result as a table (``fmt="table"``) or JSON (``"json"``); exit code 1 when a deletion failed.

    Examples:
        >>> print(render_prune(PruneResult(PrunePlan("base", 2, Path("ckpts/base")))).stdout(), end="")
        nothing to prune: 'base' has 0 checkpoint(s) per kind, keeping up to 2
    """
    plan = result.plan
    out = Output(code=1 if result.failed else 0)
    if fmt == "json":
        data = {
            "scenario": plan.scenario,
            "keep": plan.keep,
            "dry_run": result.dry_run,
            "delete": [_entry(plan, c) for c in plan.delete],
            "kept": [_entry(plan, c) for c in plan.kept],
            "unreadable": [_entry(plan, c) for c in plan.unreadable],
            "freed": 0 if result.dry_run else plan.freed,
            "failed": result.failed,
        }
        out.out(to_json(data))
        return out
    for c in plan.unreadable:
        out.err(f"{PROG}: leaving unreadable {rel(c.path)} alone ('sucrose check' reports it)")
    if not plan.delete:
        out.out(
            f"nothing to prune: {plan.scenario!r} has {len(plan.kept)} checkpoint(s) per kind, "
            f"keeping up to {plan.keep}"
        )
    else:
        rows = [
            [
                Path(c.path).name,
                str(c.epochs),
                "-" if c.step is None else str(c.step),
                human_size(plan.sizes.get(c.path, 0)),
            ]
            for c in plan.delete
        ]
        out.out(table(["FILE", "EPOCHS", "STEP", "SIZE"], rows, right=(1, 2, 3)))
        verb = "would delete" if result.dry_run else "deleted"
        tail = (
            f" and keep {len(plan.kept)} (the newest {plan.keep} of each kind); "
            "run again with --yes to delete them"
            if result.dry_run
            else f"; kept {len(plan.kept)} (the newest {plan.keep} of each kind)"
        )
        out.out(f"\n{verb} {len(plan.delete)} file(s) ({human_size(plan.freed)}) in {rel(plan.folder)}{tail}")
    for text in result.failed:
        out.err(f"{PROG}: could not delete {text}")
    return out
