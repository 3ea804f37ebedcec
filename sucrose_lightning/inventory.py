"""A workspace's inventory: its scenarios in tree order, what each has on disk, and orphans.

Library code and the ``sucrose`` command share it; each scenario's files come from its
:class:`~sucrose_lightning.store.CheckpointStore`. It imports neither torch nor lightning.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from .config import Config, WorkspaceSettings
from .layout import VERSION_DIR, Layout
from .store import CheckpointStore, ScenarioFiles

__all__ = ["all_folders", "find_orphans", "scenario_files", "scenario_tree", "store_of"]

# Folders a SummaryWriter makes inside a scenario's logs folder: add_hparams() names them by
# str(time.time()) (``1795702638.7153077``, always with a dot), Lightning's default logger
# ``version_<n>``. A removed child domain named like that is not reported as an orphan.
_WRITER_SUBDIR = re.compile(r"\d+\.\d+")


def store_of(workspace: Path, name: str, settings: WorkspaceSettings) -> CheckpointStore:
    """The checkpoint store of scenario (or orphan folder) ``name``."""
    return CheckpointStore(Layout(workspace, name, settings))


def scenario_files(workspace: Path, name: str, settings: WorkspaceSettings) -> ScenarioFiles:
    """What scenario ``name`` has on disk (checkpoints of both loops, logs); imports nothing heavy.

    Examples:
        >>> import tempfile
        >>> info = scenario_files(Path(tempfile.mkdtemp()), "base", WorkspaceSettings())
        >>> info.ckpts, info.logs
        ([], False)
    """
    return store_of(workspace, name, settings).inventory()


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


def all_folders(root: Path) -> list[str]:
    """Every folder under ``root`` (relative, ``/``-separated), skipping sucrose's dot-folders.

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "base" / "case1").mkdir(parents=True)
        >>> all_folders(root)
        ['base', 'base/case1']
    """
    out = []
    for dirpath, dirnames, _ in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        rel = Path(dirpath).relative_to(root).as_posix()
        if rel != ".":
            out.append(rel)
    return out


def scenario_tree(cfg: Config) -> list[tuple[str, int]]:
    """Scenarios in tree order (children right after their parent, else file order) with depth.

    Examples:
        >>> scenario_tree(Config(Path("c.yaml"), {"base": {}, "other": {}, "base/x": {}}))
        [('base', 0), ('base/x', 1), ('other', 0)]
    """
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
