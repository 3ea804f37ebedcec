"""A workspace's inventory: its scenarios in tree order, what each has on disk, and orphans.

Library code and the ``sucrose`` command share it; each scenario's files come from its
:class:`~sucrose_lightning.store.CheckpointStore`. It imports neither torch nor lightning.
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from pathlib import Path

from .config import Config, WorkspaceSettings
from .layout import VERSION_DIR, Layout
from .store import CheckpointStore, ScenarioFiles

__all__ = [
    "Listing",
    "all_folders",
    "find_orphans",
    "list_tree",
    "scenario_files",
    "scenario_tree",
    "store_of",
]

#: A walked folder tree: relative ``/``-path (``"."`` for the root) -> (names of its regular
#: files, whether it holds any entry that is not a folder and not hidden).
Listing = dict[str, tuple[list[str], bool]]

# Folders a SummaryWriter makes inside a scenario's logs folder: add_hparams() names them by
# str(time.time()) (``1795702638.7153077``, always with a dot), Lightning's default logger
# ``version_<n>``. A removed child domain named like that is not reported as an orphan.
_WRITER_SUBDIR = re.compile(r"\d+\.\d+")


def store_of(workspace: Path, name: str, settings: WorkspaceSettings) -> CheckpointStore:
    """The checkpoint store of scenario (or orphan folder) ``name``."""
    return CheckpointStore(Layout(workspace, name, settings))


def scenario_files(
    workspace: Path,
    name: str,
    settings: WorkspaceSettings,
    sizes: bool = False,
    listing: Listing | None = None,
) -> ScenarioFiles:
    """What scenario ``name`` has on disk (checkpoints of both loops, logs); imports nothing heavy.

    ``sizes=True`` also adds up the checkpoints' sizes (a ``stat`` per file). ``listing``: the
    checkpoint tree from :func:`list_tree`, so that its folder is not listed again.

    Examples:
        >>> import tempfile
        >>> info = scenario_files(Path(tempfile.mkdtemp()), "base", WorkspaceSettings())
        >>> info.ckpts, info.logs
        ([], False)
    """
    # a folder the walk did not enter (missing, or a link to another disk) is listed by its store
    names = listing[name][0] if listing is not None and name in listing else None
    return store_of(workspace, name, settings).inventory(sizes, names)


def list_tree(root: Path) -> Listing:
    """One ``scandir`` of every folder under ``root``, skipping sucrose's dot-folders.

    ``sucrose ls`` walks the checkpoint tree once and hands each scenario its folder's names
    (:func:`scenario_files`) and the whole tree to :func:`find_orphans`. Links to folders are
    listed as entries, not followed (as :func:`os.walk` does).

    Examples:
        >>> import tempfile
        >>> root = Path(tempfile.mkdtemp())
        >>> (root / "base" / ".abandoned").mkdir(parents=True)
        >>> _ = (root / "base" / "base_e1.pt").write_bytes(b"")
        >>> list_tree(root)
        {'.': ([], False), 'base': (['base_e1.pt'], True)}
    """
    out: Listing = {}
    todo = [(str(root), ".")]
    while todo:
        path, rel = todo.pop()
        files: list[str] = []
        visible = False
        try:
            with os.scandir(path) as entries:
                for e in entries:
                    name = e.name
                    if _is(e.is_dir):
                        if not name.startswith(".") and not _is(e.is_symlink):
                            todo.append((e.path, name if rel == "." else f"{rel}/{name}"))
                        continue
                    if _is(e.is_file):
                        files.append(name)
                    visible = visible or not name.startswith(".")
        except OSError:
            if rel == ".":
                return {}
            continue
        out[rel] = (files, visible)
    return dict(sorted(out.items()))


def _is(test: Callable[[], bool]) -> bool:
    """A ``DirEntry`` test; ``False`` where the filesystem cannot tell (as :func:`os.walk` does)."""
    try:
        return test()
    except OSError:
        return False


def find_orphans(workspace: Path, cfg: Config, listing: Listing | None = None) -> list[str]:
    """Folders under ``ckpts/`` or ``logs/`` that hold files but match no domain of the config.

    Folders starting with ``.`` (sucrose's own, like ``.abandoned``) are skipped, and so
    are Lightning's ``version_<n>`` folders inside a scenario's logs folder. ``listing``: the
    checkpoint tree from :func:`list_tree`, walked already.

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
        tree = listing if listing is not None and folder == cfg.settings.ckpts_folder else None
        for rel, (_, visible) in (list_tree(workspace / folder) if tree is None else tree).items():
            if rel == "." or rel in names:
                continue
            parent, _, last = rel.rpartition("/")
            if (
                folder == cfg.settings.logs_folder
                and parent in names
                and (VERSION_DIR.fullmatch(last) or _WRITER_SUBDIR.fullmatch(last))
            ):
                continue  # a writer's sub-folder of a known scenario's logs (version_0, add_hparams)
            if visible:
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
